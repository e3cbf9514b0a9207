"""MultiHeadWrapper: construction, the NPE-LA inference formula, and all eleven supported heads."""
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import npe.hooks  # noqa: F401  (registers the hooks)
import npe.models  # noqa: F401
from npe.errors import UserError
from npe.models import SUPPORTED_HEADS, MultiHeadWrapper



C = 3
# Four backbone levels, as a ResNet-like encoder would give them.
CHANNELS = [8, 16, 32, 64]
SIZES = [32, 16, 8, 8]
CE = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)

HEADS = {
    'FCNHead': dict(in_channels=64, channels=8, num_convs=2),
    'UPerHead': dict(in_channels=CHANNELS, in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6), channels=8),
    'ASPPHead': dict(in_channels=64, channels=8, dilations=(1, 2, 3, 4)),
    'DepthwiseSeparableASPPHead': dict(in_channels=64, channels=8, dilations=(1, 2, 3, 4),
                                       c1_in_channels=8, c1_channels=4),
    'PSPHead': dict(in_channels=64, channels=8, pool_scales=(1, 2, 3, 6)),
    'DNLHead': dict(in_channels=64, channels=8, reduction=2, use_scale=True,
                    mode='embedded_gaussian', temperature=0.05),
    'NLHead': dict(in_channels=64, channels=8, reduction=2, use_scale=True, mode='embedded_gaussian'),
    'APCHead': dict(in_channels=64, channels=8, pool_scales=(1, 2, 3, 6), fusion=True),
    'ANNHead': dict(in_channels=[32, 64], in_index=[2, 3], channels=8, project_channels=4,
                    query_scales=(1, ), key_pool_scales=(1, 3, 6, 8)),
    'SETRUPHead': dict(in_channels=64, channels=8, in_index=3, num_convs=1, up_scale=2, kernel_size=3,
                       norm_layer=dict(type='LN', eps=1e-6, requires_grad=True)),
    'EMAHead': dict(in_channels=64, channels=8, ema_channels=8, num_bases=4, num_stages=2,
                    momentum=0.1),
}


def head_cfg(name: str) -> dict:
    cfg = dict(type=name, num_classes=C, dropout_ratio=0.1, align_corners=False,
               norm_cfg=dict(type='BN', requires_grad=True), loss_decode=copy.deepcopy(CE))
    cfg.update(copy.deepcopy(HEADS[name]))
    return cfg


def features(seed: int = 0, n: int = 2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, s, s, generator=g) for c, s in zip(CHANNELS, SIZES)]


def samples(n: int = 2, size: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        sample = SegDataSample()
        label = torch.randint(0, C, (1, size, size), generator=g)
        label[0, :4, :4] = 255
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        out.append(sample)
    return out


def build(name='FCNHead', **kwargs) -> MultiHeadWrapper:
    torch.manual_seed(0)
    return MODELS.build(dict(type='MultiHeadWrapper', main_head=head_cfg(name), **kwargs))


def test_supported_list_is_the_reference_list():
    assert set(SUPPORTED_HEADS) == set(HEADS)


@pytest.mark.parametrize('name', sorted(HEADS))
def test_every_supported_head_builds_trains_and_predicts(name):
    wrapper = build(name, num_pem=2)
    assert len(wrapper.pems) == 2
    # BN-free PEMs: no BatchNorm anywhere in a prior estimator module.
    for pem in wrapper.pems:
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in pem.modules())
    wrapper.train()
    losses = wrapper.loss(features(), samples(), train_cfg={})
    assert set(losses) >= {'loss_ce', 'loss_one_way_logistic', 'acc_seg'}
    total = losses['loss_ce'] + losses['loss_one_way_logistic']
    total.backward()
    for module in (wrapper.main_head, *wrapper.pems):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), name
    wrapper.eval()
    with torch.no_grad():
        seg = wrapper.predict(features(), [s.metainfo for s in samples()], test_cfg={})
    assert seg.shape == (2, C, 64, 64)
    assert torch.isfinite(seg).all()


def test_reference_init_small_normal_weights_and_zero_bias():
    wrapper = build('PSPHead', num_pem=1)
    convs = [m for m in wrapper.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.std().item() == pytest.approx(0.001, rel=0.1)
    assert all(m.bias is None or torch.all(m.bias == 0) for m in convs)


def test_fcnhead_pem_is_light_and_on_the_last_feature():
    wrapper = build('UPerHead', num_pem=1, pem_type='FCNHead')
    pem = wrapper.pems[0]
    assert type(pem).__name__ == 'FCNHead'
    assert pem.in_channels == 64 and pem.in_index == 3 and pem.channels == 8
    assert len(pem.convs) == 1 and not pem.concat_input


@pytest.mark.parametrize('num_pem', [0, 1, 3])
@pytest.mark.parametrize('s', [1.0, 2.0])
def test_eval_logits_formula(num_pem, s):
    wrapper = build('FCNHead', num_pem=num_pem, scale_factor=s)
    # Make the PEMs differ from each other and from zero so the formula is really exercised.
    with torch.no_grad():
        for k, pem in enumerate(wrapper.pems):
            for p in pem.parameters():
                p.add_(torch.randn_like(p) * 0.02 * (k + 1))
    wrapper.eval()
    x = features(seed=3)
    with torch.no_grad():
        got = wrapper.forward(x).numpy()
        z = wrapper.main_head(x).numpy()
        us = [pem(x).numpy() for pem in wrapper.pems]  # same resolution as z for FCNHead
    expected = z.astype(np.float64).copy()
    if num_pem:
        adj = np.zeros_like(expected)
        for u in us:
            for n in range(u.shape[0]):
                adj[n] += (u[n] - u[n].mean()) / s  # one scalar mean per image over C, h, w
        expected += adj / num_pem
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    if num_pem == 0:
        np.testing.assert_array_equal(got, z)


def test_counted_log_prior_adjustment():
    wrapper = build('FCNHead', num_pem=0, log_prior=[np.log(0.7), np.log(0.2), np.log(0.1)],
                    scale_factor=2.0)
    wrapper.eval()
    x = features()
    with torch.no_grad():
        z = wrapper.main_head(x)
        got = wrapper(x)
    expected = z - torch.tensor([np.log(0.7), np.log(0.2), np.log(0.1)]).view(1, -1, 1, 1).float() / 2
    torch.testing.assert_close(got, expected)


def test_training_forward_returns_logits_and_pem_maps():
    wrapper = build('FCNHead', num_pem=2)
    wrapper.train()
    z, us = wrapper(features())
    assert z.shape == (2, C, 8, 8) and len(us) == 2 and us[0].shape == z.shape


def test_pem_loss_weight_is_inherited_from_ce():
    cfg = head_cfg('FCNHead')
    cfg['loss_decode'] = [dict(type='CrossEntropyLoss', loss_weight=0.4),
                          dict(type='DiceLoss', loss_weight=1.0)]
    wrapper = MODELS.build(dict(type='MultiHeadWrapper', main_head=cfg, num_pem=1))
    assert wrapper.pem_loss.loss_weight == pytest.approx(0.4)
    losses = wrapper.loss(features(), samples(), train_cfg={})
    assert 'loss_dice' in losses  # other original losses still apply to z
    explicit = MODELS.build(dict(type='MultiHeadWrapper', main_head=cfg, num_pem=1, pem_weight=2.0))
    assert explicit.pem_loss.loss_weight == 2.0


def test_learned_prior_recording():
    wrapper = build('FCNHead', num_pem=1)
    wrapper.eval()
    wrapper.start_prior_recording()
    with torch.no_grad():
        x = features()
        wrapper(x)
        u = wrapper.pems[0](x)
    prior = wrapper.stop_prior_recording()
    centred = u - u.mean(dim=(1, 2, 3), keepdim=True)
    expected = centred.double().mean(dim=(0, 2, 3)).numpy()
    np.testing.assert_allclose(prior, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize('bad, match', [
    (dict(main_head=dict(type='SegformerHead', in_channels=[8], in_index=[0], channels=8,
                         num_classes=3)), 'not supported'),
    (dict(main_head=dict(head_cfg('FCNHead'), loss_decode=dict(type='DiceLoss'))), 'CrossEntropyLoss'),
    (dict(main_head=head_cfg('FCNHead'), pem_type='ASPPHead'), 'pem_type'),
])
def test_bad_heads_are_clear_errors(bad, match):
    with pytest.raises(UserError, match=match):
        MODELS.build(dict(type='MultiHeadWrapper', **bad))


def test_runner_init_redraws_the_reference_init_in_the_reference_order():
    """``init_weights`` (what MMEngine's runner calls) draws N(0, 0.001^2) for the reference's unused
    classifier first, then for every Conv2d/Linear in registration order (docs/method.md section 1)."""
    wrapper = build('FCNHead', num_pem=2)
    convs = [m for m in wrapper.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    torch.manual_seed(7)
    state = torch.get_rng_state()
    wrapper.init_weights()
    torch.set_rng_state(state)
    torch.empty(wrapper._unused_classifier_shape).normal_(0.0, 0.001)
    for module in convs:
        expected = torch.empty_like(module.weight).normal_(0.0, 0.001)
        assert torch.equal(module.weight, expected)
        assert module.bias is None or torch.all(module.bias == 0)
    # The main head's MMSeg init (conv_seg ~ N(0, 0.01^2)) did not run.
    assert wrapper.main_head.conv_seg.weight.std().item() < 0.002


def test_init_mode_mmseg_uses_the_heads_own_init():
    wrapper = build('FCNHead', num_pem=1, init_mode='mmseg')
    wrapper.init_weights()
    assert wrapper.main_head.conv_seg.weight.std().item() > 0.005  # MMSeg: N(0, 0.01^2)
    with pytest.raises(UserError, match='init_mode'):
        build('FCNHead', num_pem=1, init_mode='kaiming')
