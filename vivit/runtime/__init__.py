"""How runs run: config composition (conf/ and the model zoo), one-line config errors, preflight checks, DDP ranks
under Hydra sweeps, SLURM, run folders and resume.

May import: vivit.weights, vivit.models, vivit.common.
"""
