"""Reproduction tooling: the paper's reference numbers (`paper.py`) and a multirun collector (`collect.py`)."""
