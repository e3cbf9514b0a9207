"""Work dirs in the reference code's layout (written here from docs/method.md, not from the
reference's code): its dumped config imports `npe.multi_head_wrapper`, `npe.multi_head_custom_loss`,
`npe.freeze_backbone` and names the `MultiHeadWrapper`; its checkpoint holds the kit's keys plus the
unused inherited classifier `decode_head.conv_seg`. npe-test translates it with one line, ignores that
key with a note, gives the metrics of the same weights in the kit's work dir, and fails clearly on any
other mismatch. Also: npe-test is quiet (MMEngine's log in a file) unless --verbose."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

import npe
from npe.checkpoint import allow_mmengine_checkpoints
from npe.cli.test import main
from npe.evaluation import find_run_config
from npe.work_dir import latest_checkpoint

STAMP = '20260102_030405'


def expect_one_line_error(argv: list[str], capsys) -> str:
    """npe-test in-process: exit status 2 and one ``error:`` line on stderr; returns it."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), lines
    return lines[0]


def write_reference_work_dir(kit_dir: Path, dest: Path, *, head_extra: dict | None = None,
                             state_edit=None) -> Path:
    """The kit run's weights in the layout of a reference `tools/train.py` run (docs/method.md sections 1, 4)."""
    cfg = Config.fromfile(str(find_run_config(kit_dir)))
    head = cfg.model.decode_head
    cfg.model.decode_head = dict(type='MultiHeadWrapper', main_head=head.main_head, num_pem=head.num_pem,
                                 pem_type=head.pem_type, scale_factor=2.0, **(head_extra or {}))
    cfg.custom_imports = dict(imports=['npe.multi_head_wrapper', 'npe.multi_head_custom_loss',
                                       'npe.freeze_backbone', 'npe.datasets.mmseg_types'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='ReferenceFreezeBackboneHook', priority='NORMAL')]
    cfg.pop('npe', None)
    cfg.work_dir = str(dest)
    (dest / STAMP / 'vis_data').mkdir(parents=True)
    cfg.dump(str(dest / STAMP / 'vis_data' / 'config.py'))
    cfg.dump(str(dest / 'smoke_unet.py'))
    allow_mmengine_checkpoints()
    ckpt = torch.load(str(latest_checkpoint(kit_dir)), map_location='cpu', weights_only=True)
    state = dict(ckpt['state_dict'])
    classes, channels = head.main_head.num_classes, head.main_head.channels
    # the wrapper's own inherited classifier: built and initialised, never used
    state['decode_head.conv_seg.weight'] = torch.randn(classes, channels, 1, 1)
    state['decode_head.conv_seg.bias'] = torch.zeros(classes)
    if state_edit:
        state_edit(state)
    torch.save({'meta': ckpt.get('meta', {}), 'state_dict': state}, dest / 'iter_8.pth')
    (dest / 'last_checkpoint').write_text(str(dest / 'iter_8.pth'))
    return dest


@pytest.mark.integration
def test_reference_work_dir_gives_the_kit_metrics(smoke_npe_run, tmp_path, capsys):
    ref = write_reference_work_dir(smoke_npe_run, tmp_path / 'ref')
    ours = npe.evaluate(smoke_npe_run, scale_factors=[1, 2], out_dir=tmp_path / 'ours')
    theirs = npe.evaluate(ref, scale_factors=[None, 1], out_dir=tmp_path / 'theirs')
    assert theirs[0]['scale_factor'] == 2.0  # the reference config's trained s
    assert theirs[0]['per_class']['confusion'] == ours[1]['per_class']['confusion']
    assert theirs[1]['per_class']['confusion'] == ours[0]['per_class']['confusion']
    assert theirs[0]['metrics'] == ours[1]['metrics']
    notes = theirs[0]['notes']
    assert len(notes) == 2 and 'config of the reference code: translated' in notes[0]
    assert 'decode_head.conv_seg.weight, decode_head.conv_seg.bias (51 parameters)' in notes[1]

    # the command: quiet, one line per note, the table; MMEngine's log in a file
    capsys.readouterr()  # (the library calls above are verbose by default)
    assert main([str(ref), '--scale-factor', '1', '2']) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) <= 10, out
    assert sum('note:' in line for line in out) == 2
    log = next(line for line in out if 'MMEngine log in' in line).split('MMEngine log in ')[1].split(' (')[0]
    assert 'Environment' in Path(log).read_text() or 'Config' in Path(log).read_text()


@pytest.mark.integration
def test_verbose_shows_mmengine_log(smoke_npe_run, capsys):
    assert main([str(smoke_npe_run), '--scale-factor', '1', '--verbose']) == 0
    captured = capsys.readouterr()
    assert len((captured.out + captured.err).splitlines()) > 30


@pytest.mark.integration
@pytest.mark.parametrize('edit, words', [
    (lambda s: s.pop('decode_head.pems.0.conv_seg.weight'), "1 weight(s) of the model not in it"),
    (lambda s: s.__setitem__('backbone.extra.weight', torch.zeros(1)), "backbone.extra.weight"),
    (lambda s: s.__setitem__('decode_head.main_head.conv_seg.bias', torch.zeros(5)), "has shape (5,)"),
])
def test_other_checkpoint_mismatch_is_one_line_error(smoke_npe_run, tmp_path, capsys, edit, words):
    ref = write_reference_work_dir(smoke_npe_run, tmp_path / 'ref', state_edit=edit)
    line = expect_one_line_error([str(ref)], capsys)
    assert 'does not fit the config' in line and words in line


@pytest.mark.integration
def test_unknown_reference_option_is_one_line_error(smoke_npe_run, tmp_path, capsys):
    ref = write_reference_work_dir(smoke_npe_run, tmp_path / 'ref', head_extra={'prior_momentum': 0.9})
    line = expect_one_line_error([str(ref)], capsys)
    assert 'prior_momentum' in line and 'no counterpart' in line
    shutil.rmtree(ref)


@pytest.mark.integration
def test_pems_switched_off_by_config_use_the_main_head(smoke_npe_run, tmp_path):
    """--cfg-options model.decode_head.num_pem=0 on an NPE run: the PEM weights are left out with a
    note, and the result is the main head alone (the npe_main_only row)."""
    off = npe.evaluate(smoke_npe_run, scale_factors=[1], cfg_options={'model.decode_head.num_pem': 0},
                       out_dir=tmp_path / 'off')
    main_only = npe.evaluate(smoke_npe_run, adjustments=[('none', 1.0)], out_dir=tmp_path / 'main')
    assert any('PEM weight(s) are not used' in n for n in off[0]['notes'])
    assert off[0]['per_class']['confusion'] == main_only[0]['per_class']['confusion']
