"""Training hooks of the NPE protocol: freezing and checkpoint remapping (docs/method.md sections 4-5)."""
from __future__ import annotations

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict
from mmseg.registry import HOOKS

from npe.checkpoint import allow_mmengine_checkpoints
from npe.options import DEFAULTS

allow_mmengine_checkpoints()


def unwrap(model: nn.Module) -> nn.Module:
    """The bare segmentor inside a DDP/FSDP wrapper."""
    return model.module if is_model_wrapper(model) else model


def freeze(module: nn.Module) -> None:
    """No gradients and eval mode (BatchNorm statistics and dropout fixed)."""
    for param in module.parameters():
        param.requires_grad_(False)
    module.eval()


def frozen_parts(model: nn.Module, backbone: bool, decode: bool) -> list[nn.Module]:
    """The backbone and/or the wrapper's main head of a segmentor."""
    model = unwrap(model)
    parts = []
    if backbone:
        parts.append(model.backbone)
    if decode:
        parts.append(model.decode_head.main_head)
    return parts


@HOOKS.register_module()
class NPEFreezeHook(Hook):
    """Freeze the backbone and/or the main head before training.

    ``keep_eval=False`` is the reference's behaviour: eval mode is set once, and MMEngine's
    ``model.train()`` at every iteration switches it back, so BatchNorm statistics of "frozen" parts
    keep moving. ``keep_eval=True`` (protocol ``fixed``) re-applies eval mode before every iteration.
    """

    priority = 'NORMAL'

    def __init__(self, freeze_backbone: bool = DEFAULTS.freeze_backbone,
                 freeze_decode: bool = DEFAULTS.freeze_decode, keep_eval: bool = False) -> None:
        self.freeze_backbone = freeze_backbone
        self.freeze_decode = freeze_decode
        self.keep_eval = keep_eval

    def _parts(self, runner) -> list[nn.Module]:
        return frozen_parts(runner.model, self.freeze_backbone, self.freeze_decode)

    def before_train(self, runner) -> None:
        for part in self._parts(runner):
            freeze(part)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.keep_eval:
            for part in self._parts(runner):
                part.eval()


@HOOKS.register_module()
class NPECheckpointRemapHook(Hook):
    """Load a plain MMSeg checkpoint into the wrapper: ``decode_head.*`` -> ``decode_head.main_head.*``.

    Runs before training (after MMEngine's own ``load_from``), and not at all when the run resumed
    from its own checkpoint (that one already holds the trained main head). With ``freeze_decode``
    (the reference applies ``--freeze-decode`` only here) the main head is frozen afterwards, once.
    """

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str, freeze_decode: bool = DEFAULTS.freeze_decode) -> None:
        self.checkpoint = checkpoint
        self.freeze_decode = freeze_decode

    def before_train(self, runner) -> None:
        model = unwrap(runner.model)
        if runner.iter == 0:
            ckpt = _load_checkpoint(self.checkpoint, map_location='cpu')
            state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
            remapped = {}
            for key, value in state.items():
                key = key[len('module.'):] if key.startswith('module.') else key
                # An NPE checkpoint already has main_head / pems keys: those stay as they are.
                if key.startswith('decode_head.') and not key.startswith(
                        ('decode_head.main_head.', 'decode_head.pems.')):
                    key = 'decode_head.main_head.' + key[len('decode_head.'):]
                remapped[key] = value
            load_state_dict(model, remapped, strict=False, logger=runner.logger)
            runner.logger.info(f'NPE: loaded {self.checkpoint} with decode_head -> '
                               'decode_head.main_head')
        if self.freeze_decode:
            freeze(model.decode_head.main_head)
