"""What a run shows and records: Weights & Biases (never prompts, never hangs), continued CSV/TensorBoard logs, the
run config and evaluation outputs on every logger, throughput, and the console (quiet libraries, the results table).

May import: vivit.models, vivit.datamodules, vivit.common.
"""
