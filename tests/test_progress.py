"""The training's progress lines, "resuming from iteration N" and the wall time summed over the parts
of a resumed run (npe.hooks.NPEProgressHook, npe.resume.NPEResumeStateHook, npe.cli.progress), on a
real MMEngine Runner training a tiny model on the CPU (seconds; the MMSeg trainings are in test_run)."""
from __future__ import annotations

import io
import logging

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

from npe.cli.progress import showing_progress
from npe.hooks import NPEProgressHook, duration_text, progress_text
from npe.resume import wall_time_before

pytestmark = pytest.mark.filterwarnings('ignore')


class Tiny(BaseModel):
    """A one-weight regression: enough for MMEngine's loop, optimizer and checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.w(inputs)   # default_collate stacked the batch
        if mode == 'loss':
            return dict(loss=((out - targets) ** 2).mean())
        return out


def _dataset():
    return [dict(inputs=torch.tensor([float(i)]), targets=torch.tensor([2.0 * i])) for i in range(8)]


def _runner(work_dir, max_iters: int, resume: bool = False) -> Runner:
    runner = Runner(
        model=Tiny(), work_dir=str(work_dir), experiment_name=f'tiny{max_iters}{resume}',
        train_dataloader=dict(dataset=_dataset(), sampler=dict(type='InfiniteSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        train_cfg=dict(type='NPEIterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.001)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=[dict(type='NPEResumeStateHook')], default_scope='mmseg', resume=resume)
    runner.register_hook(NPEProgressHook(plain_seconds=3600))
    return runner


def test_progress_lines_resume_message_and_wall_time(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger='npe')
    _runner(tmp_path, 20).train()
    plain = [r for r in caplog.records if r.name == 'npe.progress' and r.levelno == logging.INFO]
    # one plain line every 10% of the run (every 2 iterations here), the last one "done"
    assert [r.npe_progress['iteration'] for r in plain] == list(range(2, 21, 2))
    assert plain[-1].npe_progress['final'] and plain[-1].getMessage().strip().startswith('iteration 20/20 (100%)')
    assert 'loss ' in plain[0].getMessage() and 'ETA ' in plain[0].getMessage()
    assert not any('resuming' in r.getMessage() for r in caplog.records)
    saved = torch.load(tmp_path / 'iter_20.pth', weights_only=False)['npe_resume']['wall_time_s']
    assert saved > 0

    caplog.clear()
    resumed = _runner(tmp_path, 30, resume=True)
    resumed.train()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith('resuming from iteration 20 of 30') for m in messages), messages
    assert wall_time_before(resumed) == pytest.approx(saved)
    plain = [r.npe_progress['iteration'] for r in caplog.records
             if r.name == 'npe.progress' and r.levelno == logging.INFO]
    assert plain == [21, 24, 27, 30]   # 10% of 30 = every 3, and the first after the resume
    later = torch.load(tmp_path / 'iter_30.pth', weights_only=False)['npe_resume']['wall_time_s']
    assert later > saved   # the second part adds to the first, it does not start from zero


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_line_on_a_terminal_plain_lines_elsewhere(tmp_path):
    terminal = _Terminal()
    with showing_progress(terminal):
        _runner(tmp_path / 'a', 10).train()
    text = terminal.getvalue()
    assert text.startswith('\r  iteration') and text.count('\n') == 1 and text.endswith('\n')
    assert 'iteration 10/10 (100%)' in text.rsplit('\r', 1)[-1]
    assert max(len(part) for part in text.split('\r')) <= 100

    pipe = io.StringIO()   # not a terminal: the block changes nothing, nothing drawn in place
    with showing_progress(pipe):
        _runner(tmp_path / 'b', 10).train()
    assert pipe.getvalue() == '' and not logging.getLogger('npe.progress').handlers


def test_progress_text():
    assert progress_text(120, 600, 0.87312, 92) == 'iteration 120/600 (20%), loss 0.8731, ETA 1 min 32 s'
    assert progress_text(600, 600, None, 0) == 'iteration 600/600 (100%), done'
    assert duration_text(7500) == '2 h 05 min' and duration_text(4467600) == '1241 h' and duration_text(4.4) == '4 s'
