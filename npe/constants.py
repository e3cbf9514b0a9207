"""Names and values several modules of the kit agree on, defined once (no imports, cheap to load)."""
from __future__ import annotations

__version__ = "0.1.0"

#: Training protocols: the reference's effective behaviour, and its documented one.
PROTOCOLS = ("upstream", "fixed")
#: Kinds of prior estimator module: a BN-free copy of the decode head, or a light FCN head.
PEM_TYPES = ("auto", "FCNHead")
#: What the runner's weight initialisation does to the wrapper (``MultiHeadWrapper(init_mode=...)``):
#: the reference's N(0, 0.001^2) for every Conv2d/Linear, or each head's own MMSeg init.
INIT_MODES = ("reference", "mmseg")
#: Metrics a recipe may ask for (percent, as MMSeg reports them).
METRICS = ("mIoU", "mDice", "mAcc", "aAcc")
#: Job launchers of MMEngine that the commands accept.
LAUNCHERS = ("none", "pytorch", "slurm")
#: Scale factor chosen per model on held-out training data.
AUTO = "auto"
#: Pseudo-variant: classic logit adjustment of the baseline with counted priors.
COUNTED_LA = "counted_la"
#: Schema tag of every result file (docs/internals.md).
RESULT_SCHEMA = "npe-result/1"
#: Written by a training run into its work dir: which dumped config belongs to the last run.
RUN_FILE = "npe_train.json"
#: Written by the driver when a training job has finished.
TRAIN_MARKER = "npe_train_done.json"
#: The dataloaders of an MMSeg config.
LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
