"""One-way logistic loss for prior estimator modules (docs/method.md section 2)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

#: How the loss is computed: ``'kit'`` (softplus of the gathered logits) or ``'reference'`` (the
#: reference code's order of floating-point work, which the ``upstream`` protocol selects).
ARITHMETICS = ('kit', 'reference')


@MODELS.register_module()
class OneWayLogisticLoss(nn.Module):
    """softplus(u[y]) over non-ignored pixels, averaged over PEMs, times ``loss_weight``.

    Only the ground-truth class of each pixel contributes (BCE-with-logits against target 0);
    the other classes get no term, which is what makes the PEM output track -log(prior).

    Args:
        loss_weight: multiplier of the PEM-averaged loss.
        avg_non_ignore: divide by the number of valid pixels instead of N*H*W.
        class_weight: optional per-class weights, indexed by the ground-truth class.
        align_corners: used when resizing PEM maps to the label size.
        loss_name: the key under which the loss is logged.
        arithmetic: ``'kit'`` or ``'reference'``: the same loss, computed with the reference
            code's floating-point operations in its order (see :meth:`_single_reference`), so
            that a training reproduces the reference's numbers bit for bit; the two differ in the
            last bits of the PEM gradient, which SGD amplifies (docs/fidelity.md).
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 avg_non_ignore: bool = False,
                 class_weight: Sequence[float] | None = None,
                 align_corners: bool = False,
                 loss_name: str = 'loss_one_way_logistic',
                 arithmetic: str = 'kit') -> None:
        super().__init__()
        if arithmetic not in ARITHMETICS:
            raise ValueError(f'arithmetic must be one of {ARITHMETICS}, got {arithmetic!r}')
        self.arithmetic = arithmetic
        self.loss_weight = float(loss_weight)
        self.avg_non_ignore = avg_non_ignore
        self.class_weight = None if class_weight is None else [float(w) for w in class_weight]
        self.align_corners = align_corners
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def _single(self, logits: torch.Tensor, label: torch.Tensor,
                weight: torch.Tensor | None, ignore_index: int) -> torch.Tensor:
        if logits.shape[2:] != label.shape[1:]:
            logits = F.interpolate(logits, size=label.shape[1:], mode='bilinear',
                                   align_corners=self.align_corners)
        valid = label != ignore_index
        # Ignored pixels carry an out-of-range label; gather at class 0 and mask them out.
        safe_label = torch.where(valid, label, torch.zeros_like(label)).long()
        picked = logits.gather(1, safe_label.unsqueeze(1)).squeeze(1)
        per_pixel = F.softplus(picked.float())
        mask = valid.to(per_pixel.dtype)
        if self.class_weight is not None:
            cw = per_pixel.new_tensor(self.class_weight)
            if cw.numel() != logits.shape[1]:
                raise ValueError(f'class_weight has {cw.numel()} entries, '
                                 f'the PEM predicts {logits.shape[1]} classes')
            mask = mask * cw[safe_label]
        if weight is not None:
            mask = mask * weight.to(per_pixel.dtype)
        total = (per_pixel * mask).sum()
        denom = valid.sum() if self.avg_non_ignore else torch.tensor(label.numel())
        return total / denom.clamp(min=1).to(total.dtype)

    def _single_reference(self, logits: torch.Tensor, label: torch.Tensor,
                          weight: torch.Tensor | None, ignore_index: int) -> torch.Tensor:
        """The reference's order of work: resize (always), pixels as rows (N*H*W, C), the valid
        rows, the ground-truth logit of each, BCE-with-logits against 0 (its gradient is
        ``sigmoid(u)``, softplus's is ``exp(u) / (exp(u) + 1)``: not the same last bit), weights,
        then ``sum / (count + float32 eps)``."""
        logits = F.interpolate(logits, size=label.shape[1:], mode='bilinear',
                               align_corners=self.align_corners)
        rows = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
        flat_label = label.reshape(-1).long()
        valid = flat_label != ignore_index
        valid_label = flat_label[valid]
        picked = rows[valid].gather(1, valid_label.unsqueeze(1)).squeeze(1)
        per_pixel = F.binary_cross_entropy_with_logits(picked, torch.zeros_like(picked),
                                                       reduction='none')
        if self.class_weight is not None:
            if len(self.class_weight) != logits.shape[1]:
                raise ValueError(f'class_weight has {len(self.class_weight)} entries, '
                                 f'the PEM predicts {logits.shape[1]} classes')
            per_pixel = per_pixel * per_pixel.new_tensor(self.class_weight)[valid_label]
        if weight is not None:
            per_pixel = per_pixel * weight.reshape(-1)[valid].to(per_pixel.dtype)
        count = int(valid.sum()) if self.avg_non_ignore else label.numel()
        return per_pixel.sum() / (count + torch.finfo(torch.float32).eps)

    def forward(self, pem_logits: torch.Tensor | Sequence[torch.Tensor], label: torch.Tensor,
                weight: torch.Tensor | None = None, ignore_index: int = 255,
                **kwargs) -> torch.Tensor:
        """Args: PEM logits (N, C, h, w) or a list of them; labels (N, H, W); optional per-pixel
        weights (N, H, W)."""
        if isinstance(pem_logits, torch.Tensor):
            pem_logits = [pem_logits]
        if len(pem_logits) == 0:
            return label.new_zeros((), dtype=torch.float32)
        if self.arithmetic == 'reference':
            losses = [self._single_reference(u, label, weight, ignore_index) for u in pem_logits]
            return self.loss_weight * (sum(losses) / len(losses))
        losses = [self._single(u, label, weight, ignore_index) for u in pem_logits]
        return self.loss_weight * torch.stack(losses).mean()
