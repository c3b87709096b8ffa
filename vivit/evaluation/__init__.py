"""What an evaluated split says: accuracies from logits (shared with the training metrics), the whole-split
evaluation over all ranks (mean per-class accuracy, the dataset's own subsets and submission, predictions), and
the reports people look at (per-class tables, confusion figures, sample clips).

May import: vivit.tracking, vivit.datamodules, vivit.common.
"""
