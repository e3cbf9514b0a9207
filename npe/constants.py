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
#: Decomposition rows of an NPE-trained model (no extra training): its main head unadjusted (s = inf,
#: the representation effect) and adjusted by counted priors (the estimator effect). Row names are
#: ``npe_main_only`` / ``npe_counted_la`` when a recipe has one NPE variant, else ``<variant>_...``.
MAIN_ONLY = "main_only"
NPE_COUNTED = "counted_la"
#: How s = infinity (no adjustment) is written in file names, tables and result files.
INF = "inf"
#: Schema tag of every result file (docs/internals.md).
RESULT_SCHEMA = "npe-result/1"
#: Written by a training run into its work dir: which dumped config belongs to the last run.
RUN_FILE = "npe_train.json"
#: Written by the driver when a training job has finished.
TRAIN_MARKER = "npe_train_done.json"
#: The dataloaders of an MMSeg config.
LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
