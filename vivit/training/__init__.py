"""Training: the LightningModule (loss, mixup, running metrics, optimiser and schedule), the callbacks of a run
(curves, last.ckpt, unreadable videos) and the seeding that makes a resumed run repeat itself.

May import: vivit.evaluation, vivit.datamodules (the training order and its seeds), vivit.models, vivit.common.
"""
