"""OneWayLogisticLoss against values computed pixel by pixel in plain Python."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from npe.models.loss import OneWayLogisticLoss

IGNORE = 255


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def expected_single(u, y, pixel_w=None, class_w=None, avg_non_ignore=False):
    """Sum of softplus(u[n, y, i, j]) over valid pixels, weighted, then normalised."""
    n, _, h, w = u.shape
    total, valid = 0.0, 0
    for a in range(n):
        for i in range(h):
            for j in range(w):
                label = int(y[a, i, j])
                if label == IGNORE:
                    continue
                valid += 1
                weight = 1.0
                if pixel_w is not None:
                    weight *= float(pixel_w[a, i, j])
                if class_w is not None:
                    weight *= class_w[label]
                total += weight * softplus(float(u[a, label, i, j]))
    return total / (valid if avg_non_ignore else n * h * w)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    u = [torch.randn(2, 3, 4, 5, generator=g) * 2 for _ in range(3)]
    y = torch.randint(0, 3, (2, 4, 5), generator=g)
    y[0, 0, :3] = IGNORE
    y[1, 2, 1] = IGNORE
    pixel_w = torch.rand(2, 4, 5, generator=g)
    return u, y, pixel_w


@pytest.mark.parametrize('avg_non_ignore', [False, True])
def test_single_pem_both_normalisations(data, avg_non_ignore):
    u, y, _ = data
    loss = OneWayLogisticLoss(avg_non_ignore=avg_non_ignore)(u[0], y, ignore_index=IGNORE)
    assert loss.item() == pytest.approx(expected_single(u[0].numpy(), y.numpy(),
                                                        avg_non_ignore=avg_non_ignore), rel=1e-5)


def test_normalisations_differ_when_pixels_are_ignored(data):
    u, y, _ = data
    a = OneWayLogisticLoss(avg_non_ignore=False)(u[0], y).item()
    b = OneWayLogisticLoss(avg_non_ignore=True)(u[0], y).item()
    assert b == pytest.approx(a * 40 / 36, rel=1e-5)  # 40 pixels, 4 ignored


def test_several_pems_are_averaged_and_weighted(data):
    u, y, _ = data
    loss = OneWayLogisticLoss(loss_weight=0.4)(u, y)
    expected = 0.4 * np.mean([expected_single(m.numpy(), y.numpy()) for m in u])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_pixel_and_class_weights(data):
    u, y, pixel_w = data
    class_w = [0.5, 2.0, 3.0]
    for avg in (False, True):
        loss = OneWayLogisticLoss(class_weight=class_w, avg_non_ignore=avg)(u[:2], y, weight=pixel_w)
        expected = np.mean([expected_single(m.numpy(), y.numpy(), pixel_w.numpy(), class_w, avg)
                            for m in u[:2]])
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_only_the_ground_truth_class_gets_gradient(data):
    u, y, _ = data
    logits = u[0].clone().requires_grad_(True)
    OneWayLogisticLoss()(logits, y).backward()
    grad = logits.grad
    onehot = F.one_hot(torch.where(y == IGNORE, 0, y), 3).permute(0, 3, 1, 2).bool()
    onehot &= (y != IGNORE).unsqueeze(1)
    assert torch.all(grad[~onehot] == 0)
    assert torch.all(grad[onehot] > 0)  # pushes the true-class PEM logit down


def test_maps_are_resized_to_the_label_size(data):
    _, y, _ = data
    small = torch.randn(2, 3, 2, 3)
    resized = F.interpolate(small, size=(4, 5), mode='bilinear', align_corners=False)
    assert OneWayLogisticLoss()(small, y).item() == pytest.approx(
        expected_single(resized.numpy(), y.numpy()), rel=1e-5)


def test_wrong_class_weight_length_is_an_error(data):
    u, y, _ = data
    with pytest.raises(ValueError, match='class_weight'):
        OneWayLogisticLoss(class_weight=[1.0, 2.0])(u[0], y)


def test_loss_name():
    assert OneWayLogisticLoss().loss_name == 'loss_one_way_logistic'
