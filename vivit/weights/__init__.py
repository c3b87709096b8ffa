"""Weights in and out: self-describing checkpoints (the one reader, weights only), the Lightning checkpoint writer,
initialisation from image ViTs and video checkpoints, the Hugging Face and Scenic converters, and export.

May import: vivit.models, vivit.common.
"""
