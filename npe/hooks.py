"""Training hooks of the kit: freezing and checkpoint remapping (docs/method.md sections 4-5), and the
training's progress lines (:class:`NPEProgressHook`)."""
from __future__ import annotations

import logging
import time

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict
from mmseg.registry import HOOKS

from npe.checkpoint import allow_mmengine_checkpoints
from npe.options import DEFAULTS

allow_mmengine_checkpoints()

log = logging.getLogger(__name__)


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


# ----------------------------------------------------------------------------- progress
#: The logger of the training progress lines (``npe.progress``); the commands render it
#: (one updating line on a terminal, :mod:`npe.cli.progress`), a library user's logging decides.
progress_log = logging.getLogger('npe.progress')

#: A plain (INFO) progress line at least every this fraction of the run, and every this many seconds.
PLAIN_FRACTION = 0.1
PLAIN_SECONDS = 60.0
#: The live (DEBUG) progress records at most this often: a terminal line redrawn, not a flood.
LIVE_SECONDS = 0.5


def duration_text(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``: an ETA or a duration for a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f'{seconds} s'
    if seconds < 3600:
        return f'{seconds // 60} min {seconds % 60:02d} s'
    if seconds < 10 * 3600:
        return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'
    return f'{seconds / 3600:.0f} h'   # a long estimate: its minutes say nothing


def progress_text(iteration: int, total: int, loss: float | None, eta_s: float | None) -> str:
    """``iteration 120/600 (20%), loss 0.873, ETA 1 min 32 s``: one progress line."""
    parts = [f'iteration {iteration}/{total} ({100 * iteration // max(total, 1)}%)']
    if loss is not None:
        parts.append(f'loss {loss:.4g}')
    if eta_s is not None:
        parts.append('done' if iteration >= total else f'ETA {duration_text(eta_s)}')
    return ', '.join(parts)


@HOOKS.register_module()
class NPEProgressHook(Hook):
    """Training progress on the ``npe.progress`` logger, from the main process only.

    After every iteration a DEBUG record (at most every ``LIVE_SECONDS``: what a terminal redraws in
    place) and, every ``PLAIN_FRACTION`` of the run or ``PLAIN_SECONDS``, an INFO record (the plain
    line a log or CI shows); each carries ``npe_progress`` = ``{iteration, total, loss, eta_s,
    final}``. The ETA is this session's mean time per iteration times the iterations left. Before
    training, a resumed run logs ``resuming from iteration N of M`` (on ``npe.hooks``).
    """

    priority = 'VERY_LOW'

    def __init__(self, plain_fraction: float = PLAIN_FRACTION, plain_seconds: float = PLAIN_SECONDS,
                 live_seconds: float = LIVE_SECONDS) -> None:
        self.plain_fraction, self.plain_seconds, self.live_seconds = plain_fraction, plain_seconds, live_seconds
        self._start = self._last_plain = self._last_live = 0.0
        self._first = self._next_plain = 0

    def before_train(self, runner) -> None:
        from mmengine.dist import is_main_process

        self._main = is_main_process()
        total = int(runner.max_iters)
        self._first = int(runner.iter)
        self._start = self._last_plain = self._last_live = time.perf_counter()
        step = max(1, int(total * self.plain_fraction))
        self._next_plain = (self._first // step + 1) * step
        if self._main and self._first > 0:
            log.info('resuming from iteration %d of %d (%s)', self._first, total, runner.work_dir)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not getattr(self, '_main', False):
            return
        now = time.perf_counter()
        done, total = int(runner.iter) + 1, int(runner.max_iters)
        final = done >= total
        plain = final or done >= self._next_plain or now - self._last_plain >= self.plain_seconds
        if not plain and now - self._last_live < self.live_seconds:
            return
        loss = None
        if outputs and 'loss' in outputs:
            loss = float(outputs['loss'])
        session = done - self._first
        eta = (now - self._start) / session * (total - done) if session > 0 else None
        record = dict(iteration=done, total=total, loss=loss, eta_s=eta, final=final)
        progress_log.log(logging.INFO if plain else logging.DEBUG, '  %s', progress_text(done, total, loss, eta),
                         extra=dict(npe_progress=record))
        self._last_live = now
        if plain:
            self._last_plain = now
            step = max(1, int(total * self.plain_fraction))
            self._next_plain = (done // step + 1) * step
