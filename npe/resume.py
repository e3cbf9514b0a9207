"""Training that survives a kill: atomic checkpoints and an exact resume.

- :class:`AtomicLocalBackend` (MMEngine file backend ``npe_atomic``): checkpoints and
  ``last_checkpoint`` are written to a temporary file and renamed, so a kill never leaves a
  half-written ``iter_N.pth`` behind.
- :class:`NPEResumeStateHook` stores the random number generators' states (python, numpy, torch,
  CUDA) and the training's wall time so far in every checkpoint (a resumed run adds its own part:
  :func:`wall_time_before`); :class:`NPEIterBasedTrainLoop` puts them back once MMEngine has moved
  the sampler to where the run stopped, and replays a validation that was due right after the
  checkpoint (it draws from the same generators). A run killed after a checkpoint and resumed then
  trains on the same batches with the same random draws as an uninterrupted one.

:func:`npe.training.build_train_config` switches all three on; the dumped config imports this module
through ``custom_imports`` (switched on by ``npe.training.fault_tolerant``).
"""
from __future__ import annotations

import random
import time

import numpy as np
import torch
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import HOOKS, LOOPS

from npe.files import write_bytes_atomic

BACKEND = 'npe_atomic'
STATE_KEY = 'npe_resume'


class AtomicLocalBackend(LocalBackend):
    """The local file backend, but every file is written whole or not at all."""

    def put(self, obj: bytes, filepath) -> None:
        write_bytes_atomic(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_bytes_atomic(filepath, obj.encode(encoding))


register_backend(BACKEND, AtomicLocalBackend, force=True)


def rng_state() -> dict:
    """The states of every generator training draws from, in types a weights-only load accepts."""
    np_state = np.random.get_state(legacy=False)
    state = dict(python=list(map(_tuple_to_list, random.getstate())),
                 numpy=dict(key=[int(k) for k in np_state['state']['key']], pos=int(np_state['state']['pos']),
                            has_gauss=int(np_state['has_gauss']), gauss=float(np_state['gauss'])),
                 torch=torch.get_rng_state(),
                 cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    return state


def _tuple_to_list(value):
    return list(value) if isinstance(value, tuple) else value


def set_rng_state(state: dict) -> None:
    """Put back what :func:`rng_state` returned."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np_state = state['numpy']
    np.random.set_state(dict(bit_generator='MT19937',
                             state=dict(key=np.array(np_state['key'], dtype=np.uint32), pos=np_state['pos']),
                             has_gauss=np_state['has_gauss'], gauss=np_state['gauss']))
    torch.set_rng_state(state['torch'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _val_due(loop, n: int) -> bool:
    """Whether the loop validates right after iteration ``n`` (counted from 1)."""
    if getattr(loop, 'runner', None) is None or loop.runner.val_loop is None:
        return False
    return n >= loop.val_begin and (n % loop.val_interval == 0 or n == loop.max_iters)


def wall_time_before(runner) -> float:
    """Seconds the earlier parts of a resumed training took up to the checkpoint it resumed from
    (0 for a fresh run, or a checkpoint saved before the kit recorded it)."""
    return float(getattr(runner, '_npe_wall_time_before', 0.0))


@HOOKS.register_module()
class NPEResumeStateHook(Hook):
    """Save the generators' states and the wall time so far with every checkpoint; hand them to the
    loop on resume."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def before_train(self, runner) -> None:
        # after MMEngine's resume (it loads the checkpoint before the loop calls before_train)
        state = getattr(runner, '_npe_resume_state', None) or {}
        resumed = state.get('iter') == runner.iter and runner.iter > 0   # not a fine-tune's load_from
        runner._npe_wall_time_before = float(state.get('wall_time_s', 0.0)) if resumed else 0.0
        self._start = time.perf_counter()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = runner.train_loop
        n = runner.iter + 1  # what MMEngine records as the iteration of an iteration-based run
        wall = wall_time_before(runner) + time.perf_counter() - self._start
        checkpoint[STATE_KEY] = dict(rng=rng_state(), iter=int(n), wall_time_s=round(wall, 3),
                                     val_due=bool(isinstance(loop, IterBasedTrainLoop) and _val_due(loop, n)))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        runner._npe_resume_state = checkpoint.get(STATE_KEY)


@LOOPS.register_module()
class NPEIterBasedTrainLoop(IterBasedTrainLoop):
    """MMEngine's iteration loop; on resume the saved generator states are restored after the
    sampler has been advanced (see the module docstring)."""

    def run(self):
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            for _ in range(self._iter):  # the sampler's position: the batches already trained
                next(self.dataloader_iterator)
            state = getattr(self.runner, '_npe_resume_state', None)
            if state and state.get('iter') == self._iter:
                set_rng_state(state['rng'])
                if state.get('val_due') and self._iter < self._max_iters:
                    self.runner.val_loop.run()  # draws what the uninterrupted run drew here
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
