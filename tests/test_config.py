"""apply_npe: the transformed configs, and the protocols' effect on real MMEngine training runs."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, save_checkpoint
from mmseg.registry import HOOKS, MODELS

import npe.hooks  # noqa: F401  (registers the hooks)
import npe.models  # noqa: F401
from npe.config import apply_npe, load_base_config, set_data_root
from npe.errors import UserError
from npe.logs import showing_messages



STARE = 'mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py'
ADE = 'mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py'
BASE_LR = 0.01


@pytest.fixture(scope='module')
def stare_cfg():
    return load_base_config(STARE)


def test_stare_transform(stare_cfg, capsys):
    with showing_messages():   # the lines the commands show
        cfg = apply_npe(stare_cfg, num_pem=2)
    head = cfg.model.decode_head
    assert head.type == 'MultiHeadWrapper' and head.num_pem == 2 and head.pem_type == 'auto'
    assert head.main_head.type == 'FCNHead' and head.scale_factor == 1.0
    assert 'auxiliary_head' not in cfg.model and 'auxiliary_head' in stare_cfg.model
    assert cfg.train_dataloader.batch_size == 16
    assert cfg.train_cfg.max_iters == 600 and cfg.train_cfg.val_interval == 200
    (sched, ) = cfg.param_scheduler
    assert sched.type == 'MultiStepLR' and sched.milestones == [200, 400] and sched.gamma == 0.1
    assert sched.by_epoch is False
    assert cfg.npe.protocol == 'upstream'
    assert 'npe.models' in cfg.custom_imports.imports
    # The original config object is untouched.
    assert stare_cfg.model.decode_head.type == 'FCNHead'
    err = capsys.readouterr().err
    assert 'lr_mult' in err and '--protocol fixed' in err


def test_ade20k_transform():
    cfg = apply_npe(load_base_config(ADE), num_pem=1, pem_type='FCNHead', scale_factor=2,
                    protocol='fixed')
    assert cfg.model.decode_head.main_head.type == 'PSPHead'
    assert cfg.model.decode_head.scale_factor == 2.0
    assert 'auxiliary_head' not in cfg.model
    assert cfg.train_dataloader.batch_size == 16
    assert cfg.train_cfg.max_iters == 2500 and cfg.train_cfg.val_interval == 1250
    assert cfg.param_scheduler[0].milestones == [1250]
    assert cfg.npe.protocol == 'fixed'


def test_fixed_protocol_prints_no_departure_warning(stare_cfg, capsys):
    with showing_messages():
        apply_npe(stare_cfg, protocol='fixed')
    err = capsys.readouterr().err
    assert 'protocol upstream' not in err and '--protocol fixed' not in err
    # what remains are the settings apply_npe replaces, each named once
    assert sorted(line.split(':')[1].strip() for line in err.splitlines()) == [
        'default_hooks.checkpoint.interval', 'model.auxiliary_head', 'schedule (train_cfg, param_scheduler)',
        'train_dataloader.batch_size']


PSP_160K = 'mmseg::pspnet/pspnet_r50-d8_4xb4-160k_ade20k-512x512.py'


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == 'WARNING' and r.name.startswith('npe')]


def test_apply_npe_names_each_setting_it_replaces(caplog):
    """Issue 19: 160k PolyLR at batch 4 silently became 2,500 iterations of MultiStepLR at batch 16."""
    import npe

    caplog.set_level('WARNING', logger='npe')
    cfg = npe.apply_npe(npe.load_config(PSP_160K), num_pem=1, protocol='fixed')
    assert cfg.train_cfg.max_iters == 2500 and cfg.train_dataloader.batch_size == 16
    assert _warnings(caplog) == [
        'model.auxiliary_head: FCNHead -> None (removed: NPE trains the decode head and its PEMs alone)',
        "train_dataloader.batch_size: 4 -> 16 (the reference's total batch of 16 images)",
        'schedule (train_cfg, param_scheduler): 160000 iterations of PolyLR, validation every 16000 -> 2500 '
        "iterations of MultiStepLR (x0.1 at 1250), validation every 1250, the reference's ADE20KDataset "
        "schedule (keep_schedule=True keeps the config's)",
        'default_hooks.checkpoint.interval: 16000 -> 1250 (a checkpoint at every validation, so an '
        'interrupted run resumes close to where it stopped)']


def test_keep_schedule_keeps_the_configs_schedule_under_fixed_only(caplog):
    import npe
    from npe.errors import ConfigError

    base = npe.load_config(PSP_160K)
    caplog.set_level('WARNING', logger='npe')
    cfg = npe.apply_npe(base, num_pem=1, protocol='fixed', keep_schedule=True)
    assert cfg.train_cfg.to_dict() == base.train_cfg.to_dict()
    assert [s.type for s in cfg.param_scheduler] == ['PolyLR'] and cfg.param_scheduler[0].end == 160000
    assert cfg.default_hooks.checkpoint.interval == 16000
    assert not any(w.startswith(('schedule', 'default_hooks')) for w in _warnings(caplog))
    caplog.clear()
    with pytest.raises(ConfigError, match="keep_schedule=True needs protocol 'fixed'"):
        npe.apply_npe(base, num_pem=1, keep_schedule=True)
    assert _warnings(caplog) == []   # refused before any warning
    # a dataset without a reference schedule keeps its own under both protocols: nothing to refuse
    assert npe.apply_npe('npe::smoke_unet.py', keep_schedule=True).train_cfg.max_iters == 20


def test_a_configs_own_lr_multiplier_replaced_is_named(stare_cfg, caplog):
    cfg = copy.deepcopy(stare_cfg)
    cfg.optim_wrapper.paramwise_cfg = dict(custom_keys={'backbone': dict(lr_mult=0.1), 'head': dict(lr_mult=10.0)})
    caplog.set_level('WARNING', logger='npe')
    out = apply_npe(cfg, protocol='fixed')
    assert out.optim_wrapper.paramwise_cfg.custom_keys['head'].lr_mult == 10.0   # not NPE's: kept
    assert [w for w in _warnings(caplog) if 'lr_mult' in w] == [
        "optim_wrapper.paramwise_cfg.custom_keys['backbone'].lr_mult: 0.1 -> 1.0 (protocol fixed)"]


def test_npe_train_keep_schedule_flag(tmp_path, capsys):
    """``npe-train --keep-schedule`` reaches apply_npe (refused under upstream for ADE20K: one line)."""
    from npe.cli.train import main

    with pytest.raises(SystemExit) as exc:
        main([PSP_160K, '--keep-schedule', '--work-dir', str(tmp_path / 'w')])
    assert exc.value.code == 2
    assert "error: keep_schedule=True needs protocol 'fixed'" in capsys.readouterr().err
    assert not (tmp_path / 'w').exists()


def test_load_config_reads_mmseg_names_and_refuses_what_is_not_there():
    import npe
    from npe.errors import ConfigError

    cfg = npe.load_config('mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py')
    assert cfg.model.decode_head.type == 'FCNHead'
    with pytest.raises(ConfigError, match="npe.load_config: name"):
        npe.load_config(None)


def test_dumped_config_round_trips(stare_cfg, tmp_path):
    cfg = apply_npe(stare_cfg, num_pem=3, protocol='fixed', freeze_backbone=True)
    cfg.dump(tmp_path / 'c.py')
    again = load_base_config(str(tmp_path / 'c.py'))
    assert again.model.decode_head.num_pem == 3 and again.npe.freeze_backbone is True


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_pem=0, freeze_backbone=True, freeze_decode=True), 'nothing to'),
    (dict(pem_type='PSPHead'), 'pem type'),
    (dict(protocol='paper'), 'protocol'),
    (dict(num_pem=-1), 'num_pem'),
    (dict(scale_factor=0), 'scale factor'),
])
def test_bad_options(stare_cfg, kwargs, match):
    with pytest.raises(UserError, match=match):
        apply_npe(stare_cfg, **kwargs)


def test_unsupported_head_and_loss(stare_cfg):
    cfg = copy.deepcopy(stare_cfg)
    cfg.model.decode_head.type = 'SegformerHead'
    with pytest.raises(UserError, match='not supported'):
        apply_npe(cfg)
    cfg = copy.deepcopy(stare_cfg)
    cfg.model.decode_head.loss_decode = dict(type='FocalLoss')
    with pytest.raises(UserError, match='CrossEntropyLoss'):
        apply_npe(cfg)


def test_missing_config_file():
    with pytest.raises(UserError, match='does not exist'):
        load_base_config('no/such/config.py')


# --------------------------------------------------------------------------- real training runs
TINY = {  # a narrow UNet keeps each run at a second or two
    'model.backbone.base_channels': 4,
    'model.decode_head.in_channels': 4,
    'model.decode_head.channels': 4,
}


def tiny_stare(stare_cfg):
    cfg = copy.deepcopy(stare_cfg)
    cfg.merge_from_dict(TINY)
    return cfg


def runner_for(cfg, data_root: Path, work_dir: Path, iters: int, extra_hooks=()) -> Runner:
    cfg = copy.deepcopy(cfg)
    set_data_root(cfg, data_root)
    cfg.merge_from_dict({
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': 1000,
        'default_hooks.logger.interval': 1,
    })
    cfg.param_scheduler[0].end = iters
    cfg.custom_hooks = list(cfg.custom_hooks) + list(extra_hooks)
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=0)
    return Runner.from_cfg(cfg)


@HOOKS.register_module()
class SnapshotHook(Hook):
    """Copies the model's state at the start and at the end of training (runs after NPE's hooks)."""

    priority = 'LOWEST'
    snapshots: dict = {}

    def __init__(self, tag: str):
        self.tag = tag

    def _grab(self, runner):
        return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

    def before_train(self, runner):
        SnapshotHook.snapshots[(self.tag, 'start')] = self._grab(runner)
        SnapshotHook.snapshots[(self.tag, 'lr')] = effective_lrs(runner)

    def after_train(self, runner):
        SnapshotHook.snapshots[(self.tag, 'end')] = self._grab(runner)


def effective_lrs(runner) -> dict:
    """LR each probe parameter will actually be updated with: 0 if it gets no gradient."""
    model = runner.model
    probes = {
        'backbone': model.backbone.encoder[0][0].convs[0].conv.weight,
        'main_head': model.decode_head.main_head.conv_seg.weight,
        'pem': model.decode_head.pems[0].conv_seg.weight,
    }
    out = {}
    for name, param in probes.items():
        group = next(g for g in runner.optim_wrapper.param_groups
                     if any(p is param for p in g['params']))
        out[name] = group['lr'] if param.requires_grad else 0.0
    return out


@pytest.fixture(scope='module')
def mmseg_checkpoint(stare_cfg, tmp_path_factory) -> Path:
    """A checkpoint saved from MMSeg's own (un-wrapped) tiny UNet, as the model zoo ships them."""
    init_default_scope('mmseg')
    cfg = tiny_stare(stare_cfg)
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.auxiliary_head.norm_cfg = dict(type='BN', requires_grad=True)
    torch.manual_seed(123)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():  # distinctive running statistics, to see whether they move
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp('ckpt') / 'fcn_unet_tiny-00000000.pth'
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {'mmseg_version': '1.2.2'}}, str(path))
    return path


LR_CASES = [
    # protocol, freeze_backbone, freeze_decode, load_from, expected (backbone, main_head, pem)
    ('upstream', False, False, False, (BASE_LR * BASE_LR, BASE_LR, BASE_LR)),
    ('upstream', True, False, False, (0.0, BASE_LR, BASE_LR)),
    ('upstream', False, True, False, (BASE_LR * BASE_LR, BASE_LR, BASE_LR)),
    ('upstream', False, True, True, (BASE_LR * BASE_LR, 0.0, BASE_LR)),
    ('fixed', False, False, False, (BASE_LR, BASE_LR, BASE_LR)),
    ('fixed', True, False, False, (0.0, BASE_LR, BASE_LR)),
    ('fixed', False, True, False, (BASE_LR, 0.0, BASE_LR)),
    ('fixed', True, True, True, (0.0, 0.0, BASE_LR)),
]


@pytest.mark.integration
@pytest.mark.parametrize('protocol, fb, fd, use_ckpt, expected', LR_CASES)
def test_effective_learning_rates(stare_cfg, stare_root, mmseg_checkpoint, tmp_path,
                                  protocol, fb, fd, use_ckpt, expected):
    cfg = apply_npe(tiny_stare(stare_cfg), num_pem=1, protocol=protocol, freeze_backbone=fb,
                    freeze_decode=fd, load_from=str(mmseg_checkpoint) if use_ckpt else None)
    tag = f'lr-{protocol}-{fb}-{fd}-{use_ckpt}'
    runner_for(cfg, stare_root, tmp_path, iters=1, extra_hooks=[dict(type='SnapshotHook', tag=tag)]).train()
    got = SnapshotHook.snapshots[(tag, 'lr')]
    assert got == pytest.approx(dict(zip(('backbone', 'main_head', 'pem'), expected)))


def _split(state: dict):
    frozen = {k: v for k, v in state.items() if k.startswith(('backbone.', 'decode_head.main_head.'))}
    pems = {k: v for k, v in state.items() if k.startswith('decode_head.pems.')}
    return frozen, pems


@pytest.mark.integration
def test_fixed_freeze_keeps_weights_and_bn_statistics(stare_cfg, stare_root, mmseg_checkpoint, tmp_path):
    cfg = apply_npe(tiny_stare(stare_cfg), num_pem=1, protocol='fixed', freeze_backbone=True,
                    freeze_decode=True, load_from=str(mmseg_checkpoint))
    runner_for(cfg, stare_root, tmp_path, iters=3, extra_hooks=[dict(type='SnapshotHook', tag='fx')]).train()
    start, end = SnapshotHook.snapshots[('fx', 'start')], SnapshotHook.snapshots[('fx', 'end')]
    frozen0, pems0 = _split(start)
    frozen1, pems1 = _split(end)
    assert any('running_mean' in k for k in frozen0)
    for key in frozen0:
        assert torch.equal(frozen0[key], frozen1[key]), key
    assert any(not torch.equal(pems0[k], pems1[k]) for k in pems0 if k.endswith('weight'))


@pytest.mark.integration
def test_upstream_freeze_lets_bn_statistics_move(stare_cfg, stare_root, mmseg_checkpoint, tmp_path):
    """Reference departure 3, reproduced on purpose under ``upstream``."""
    cfg = apply_npe(tiny_stare(stare_cfg), num_pem=1, protocol='upstream', freeze_backbone=True,
                    load_from=str(mmseg_checkpoint))
    runner_for(cfg, stare_root, tmp_path, iters=2, extra_hooks=[dict(type='SnapshotHook', tag='up')]).train()
    start, end = SnapshotHook.snapshots[('up', 'start')], SnapshotHook.snapshots[('up', 'end')]
    stats = [k for k in start if k.startswith('backbone.') and k.endswith('running_mean')]
    weights = [k for k in start if k.startswith('backbone.') and k.endswith('conv.weight')]
    assert any(not torch.equal(start[k], end[k]) for k in stats)
    assert all(torch.equal(start[k], end[k]) for k in weights)


@pytest.mark.integration
def test_remap_hook_loads_mmseg_checkpoint_into_main_head(stare_cfg, stare_root, mmseg_checkpoint,
                                                          tmp_path):
    cfg = apply_npe(tiny_stare(stare_cfg), num_pem=2, load_from=str(mmseg_checkpoint))
    runner_for(cfg, stare_root, tmp_path, iters=1, extra_hooks=[dict(type='SnapshotHook', tag='rm')]).train()
    loaded = SnapshotHook.snapshots[('rm', 'start')]
    saved = torch.load(mmseg_checkpoint, map_location='cpu')['state_dict']
    head_keys = [k for k in saved if k.startswith('decode_head.')]
    assert head_keys
    for key in head_keys:
        target = 'decode_head.main_head.' + key[len('decode_head.'):]
        assert torch.equal(loaded[target], saved[key]), key
    for key in (k for k in saved if k.startswith('backbone.')):
        assert torch.equal(loaded[key], saved[key]), key


def _wrapper_convs(state: dict, model) -> dict:
    """Weights and biases of every Conv2d/Linear inside the wrapper, from a state snapshot."""
    names = [name for name, m in model.decode_head.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    return {n: (state[f'decode_head.{n}.weight'], state.get(f'decode_head.{n}.bias')) for n in names}


@pytest.mark.integration
@pytest.mark.parametrize('protocol', ['upstream', 'fixed'])
def test_iteration_zero_weights_after_the_runners_init(stare_cfg, stare_root, tmp_path, protocol):
    """docs/method.md section 1: after the runner's own initialisation, every Conv2d/Linear inside the
    wrapper is N(0, 0.001^2) with zero bias; under ``upstream`` the main head's classifier too (the
    reference), under ``fixed`` that classifier gets MMSeg's own N(0, 0.01^2) (docs/fidelity.md)."""
    cfg = apply_npe(tiny_stare(stare_cfg), num_pem=1, protocol=protocol)
    tag = f'init-{protocol}'
    runner = runner_for(cfg, stare_root, tmp_path, iters=1,
                        extra_hooks=[dict(type='SnapshotHook', tag=tag)])
    runner.train()
    convs = _wrapper_convs(SnapshotHook.snapshots[(tag, 'start')], runner.model)
    assert 'main_head.conv_seg' in convs and 'pems.0.conv_seg' in convs
    classifier, _ = convs.pop('main_head.conv_seg') if protocol == 'fixed' else (None, None)
    for name, (weight, bias) in convs.items():
        assert weight.std().item() < 0.002, name   # MMSeg's own init would give 0.01 for conv_seg
        assert bias is None or torch.all(bias == 0), name
    pooled = torch.cat([w.flatten() for w, _ in convs.values()])
    assert pooled.std().item() == pytest.approx(0.001, rel=0.05)
    if classifier is not None:
        assert 0.005 < classifier.std().item() < 0.02


def test_data_root_reaches_every_dataloader_of_the_dumped_config(tmp_path):
    """--data-root points the kit config's holdout_dataloader there too (it kept its relative root)."""
    from npe.training import build_train_config

    cfg = build_train_config('npe::smoke_unet.py', work_dir=tmp_path / 'w', kit_data_root=tmp_path / 'data',
                             check_data_folders=False)
    assert cfg.get('holdout_dataloader') is not None
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'holdout_dataloader'):
        assert cfg[key].dataset.data_root == str(tmp_path / 'data' / 'smoke'), key
    cfg.dump(str(tmp_path / 'dumped.py'))
    assert "segmentation/data/smoke" not in (tmp_path / 'dumped.py').read_text()
