"""Reproduction tooling: the paper's reference numbers (`paper.py`) and a multirun collector (`collect.py`,
`python -m vivit.experiments.collect`). Installed as `vivit.experiments` (in a clone, vivit/experiments links here).

May import: vivit.models, vivit.weights, vivit.common.
"""
