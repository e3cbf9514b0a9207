"""The runtime edits every run makes to its config, training (:func:`npe.training.build_train_config`)
and evaluation (:func:`npe.eval_config.prepare_test_config`) alike, in one order.

What is run (model, NPE options, schedule) comes from the config and :func:`npe.apply_npe`; how and
where it runs is set here: the launcher (checked before anything is read), the dataset folder, the
user's ``--cfg-options``, the dataloader fixes, per-run instance names, DDP settings, no MMEngine
resume unless the caller asks for one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from mmengine.config import Config

from npe.config import (check_schedule, fix_dataloaders, kit_dataset_folder, merge_cfg_options,
                        own_runner_instances, set_data_root)
from npe.constants import LAUNCHERS, LOADERS
from npe.errors import ConfigError

#: An edit of the config in place (a hook of :func:`apply_runtime`).
Edit = Callable[[Config], None]


def check_launcher(launcher: str) -> str:
    """``launcher`` when MMEngine knows it, else one :class:`ConfigError` line (before any work)."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f'unknown launcher {launcher!r}; choose one of {", ".join(LAUNCHERS)}')
    return launcher


def resolve_dataset_folder(cfg: Config, kit_data_root: str | Path | None, *, moved_only: bool = False) -> Path | None:
    """The folder the config's datasets are read from, by :func:`npe.config.kit_dataset_folder`'s
    rule with the kit's data root ``kit_data_root`` (``--data-root``); None = the config's own stays.

    ``moved_only``: only when ``kit_data_root`` is given (an evaluation reads the data where the run
    trained unless told that it moved); training also looks at ``$NPE_DATA_ROOT`` and the default.
    """
    if moved_only and kit_data_root is None:
        return None
    return kit_dataset_folder(cfg, kit_data_root)


def apply_runtime(cfg: Config, *, launcher: str, folder: str | Path | None = None,
                  cfg_options: dict | None = None, loaders: Sequence[str] = LOADERS,
                  before_options: Edit | None = None, after_options: Edit | None = None) -> Config:
    """Apply the runtime edits to ``cfg`` in place (and return it), in this order:

    every dataset pointed at ``folder`` (None: left as it is); ``before_options(cfg)`` (defaults the
    user may override, e.g. dataloader workers, the test split); ``cfg_options`` (``--cfg-options``);
    the schedule's types checked; ``after_options(cfg)`` (edits that read the user's options, e.g.
    the batch split over processes, TTA); ``persistent_workers`` fixed for ``loaders``; per-run
    visualizer/experiment names; ``launcher`` and its DDP settings; ``resume = False`` (a training
    that resumes sets it afterwards).
    """
    check_launcher(launcher)
    if folder is not None:
        set_data_root(cfg, folder)
    if before_options is not None:
        before_options(cfg)
    merge_cfg_options(cfg, cfg_options)
    check_schedule(cfg)
    if after_options is not None:
        after_options(cfg)
    fix_dataloaders(cfg, loaders)
    own_runner_instances(cfg)
    cfg.launcher = launcher
    if launcher != 'none':
        # The one place DDP is set up: training configs (after launch.distribute split the batch) and
        # test configs both pass here; distribute() itself no longer applies it a second time.
        from npe.launch import ddp_settings
        ddp_settings(cfg)
    cfg.resume = False
    return cfg
