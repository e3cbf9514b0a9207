"""One-way logistic loss for prior estimator modules (docs/method.md section 2)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS


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
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 avg_non_ignore: bool = False,
                 class_weight: Sequence[float] | None = None,
                 align_corners: bool = False,
                 loss_name: str = 'loss_one_way_logistic') -> None:
        super().__init__()
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

    def forward(self, pem_logits: torch.Tensor | Sequence[torch.Tensor], label: torch.Tensor,
                weight: torch.Tensor | None = None, ignore_index: int = 255,
                **kwargs) -> torch.Tensor:
        """Args: PEM logits (N, C, h, w) or a list of them; labels (N, H, W); optional per-pixel
        weights (N, H, W)."""
        if isinstance(pem_logits, torch.Tensor):
            pem_logits = [pem_logits]
        if len(pem_logits) == 0:
            return label.new_zeros((), dtype=torch.float32)
        losses = [self._single(u, label, weight, ignore_index) for u in pem_logits]
        return self.loss_weight * torch.stack(losses).mean()
