"""``MultiHeadWrapper``: a decode head plus prior estimator modules (docs/method.md sections 1 and 3)."""
from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import accuracy
from mmseg.registry import MODELS

from npe.constants import INIT_MODES
from npe.errors import UserError
from npe.options import DEFAULTS, EVALUATED_SCALE, NUM_PEM, PEM_TYPE

#: Decode heads the wrapper accepts (the reference's list).
SUPPORTED_HEADS = (
    'FCNHead', 'UPerHead', 'ASPPHead', 'DepthwiseSeparableASPPHead', 'PSPHead', 'DNLHead',
    'NLHead', 'APCHead', 'ANNHead', 'SETRUPHead', 'EMAHead',
)

# Keys of a head config that BaseDecodeHead itself understands; everything else is head-specific.
_BASE_KEYS = ('in_channels', 'channels', 'num_classes', 'out_channels', 'threshold', 'dropout_ratio',
              'conv_cfg', 'act_cfg', 'in_index', 'input_transform', 'ignore_index', 'sampler',
              'align_corners')


def _head_type(cfg: dict) -> str:
    head_type = cfg.get('type', '')
    if not isinstance(head_type, str):
        head_type = getattr(head_type, '__name__', str(head_type))
    return head_type.split('.')[-1]


def _loss_list(loss_decode: Any) -> list:
    if loss_decode is None:
        return []
    if isinstance(loss_decode, (list, tuple)):
        return list(loss_decode)
    return [loss_decode]


def find_ce_loss(loss_decode: Any) -> dict:
    """Return the CrossEntropyLoss config in ``loss_decode`` or raise :class:`UserError`."""
    for loss in _loss_list(loss_decode):
        if isinstance(loss, dict) and _head_type(loss) == 'CrossEntropyLoss':
            if loss.get('use_sigmoid', False) or loss.get('use_mask', False):
                raise UserError('decode_head.loss_decode: NPE needs a softmax CrossEntropyLoss '
                                '(use_sigmoid=False); change the base config')
            return loss
    names = [_head_type(loss) if isinstance(loss, dict) else type(loss).__name__
             for loss in _loss_list(loss_decode)]
    raise UserError(f'decode_head.loss_decode is {names or "empty"}: NPE needs a CrossEntropyLoss '
                    '(alone or in a list); change the base config')


def check_head(cfg: dict) -> None:
    """Raise :class:`UserError` unless ``cfg`` is a head the wrapper supports with a CE loss."""
    head_type = _head_type(cfg)
    if head_type not in SUPPORTED_HEADS:
        raise UserError(f'decode_head type {head_type!r} is not supported by NPE; supported: '
                        f'{", ".join(SUPPORTED_HEADS)}')
    find_ce_loss(cfg.get('loss_decode', dict(type='CrossEntropyLoss')))


def _last(value: Any) -> Any:
    return value[-1] if isinstance(value, (list, tuple)) else value


def pem_config(head_cfg: dict, pem_type: str) -> dict:
    """The config of one prior estimator module: BN-free copy of the head, or a light FCNHead."""
    PEM_TYPE.check(pem_type)
    if pem_type == 'auto':
        cfg = copy.deepcopy(dict(head_cfg))
        cfg['norm_cfg'] = None
        cfg.pop('init_cfg', None)
        return cfg
    if pem_type == 'FCNHead':
        return dict(
            type='FCNHead',
            in_channels=_last(head_cfg['in_channels']),
            in_index=_last(head_cfg.get('in_index', -1)),
            channels=head_cfg['channels'],
            num_convs=1,
            concat_input=False,
            dropout_ratio=head_cfg.get('dropout_ratio', 0.1),
            num_classes=head_cfg['num_classes'],
            norm_cfg=None,
            align_corners=head_cfg.get('align_corners', False),
            loss_decode=copy.deepcopy(head_cfg.get('loss_decode', dict(type='CrossEntropyLoss'))),
        )
    raise NotImplementedError(f'no module config for the pem type {pem_type!r}')  # a new PEM_TYPES entry


@MODELS.register_module()
class MultiHeadWrapper(BaseDecodeHead):
    """The original decode head (``main_head``) plus ``num_pem`` prior estimator modules (``pems``).

    Training: returns ``(z, [u_1..u_M])``; losses are CE (and any other original loss) on ``z`` plus
    the one-way logistic loss on every ``u_m``. Eval: returns
    ``z + (1/M) * sum_m (U_m - mean(U_m)) / s`` (NPE-LA), and, if ``log_prior`` is given,
    ``- log_prior / s`` (classic logit adjustment with counted priors).

    Args:
        main_head: config of the original decode head.
        num_pem: number of prior estimator modules M (0 = no adjustment).
        pem_type: ``'auto'`` (BN-free copy of the main head) or ``'FCNHead'``.
        scale_factor: s; only used at inference.
        pem_weight: weight of the PEM loss (default: the CE ``loss_weight``).
        pem_loss: extra options of ``OneWayLogisticLoss`` (e.g. ``avg_non_ignore``, ``class_weight``).
        log_prior: optional per-class log prior for counted-prior logit adjustment at inference.
        init_std: std of the reference init applied to every Conv2d/Linear after construction.
        init_mode: what the runner's weight initialisation (``init_weights``) does.
            ``'reference'``: draw the reference init again for every Conv2d/Linear inside the
            wrapper, in the reference's order (docs/method.md section 1), so at iteration 0 the main head's
            classifier has std ``init_std`` too. ``'mmseg'``: the heads' own MMSeg ``init_cfg`` runs
            instead; for the stock heads that re-draws the main head's classifier ``conv_seg`` from
            N(0, 0.01^2), as in an un-wrapped MMSeg model, and everything else keeps the reference
            init drawn at construction (measured).
    """

    def __init__(self,
                 main_head: dict,
                 num_pem: int = DEFAULTS.num_pem,
                 pem_type: str = DEFAULTS.pem_type,
                 scale_factor: float = DEFAULTS.scale_factor,
                 pem_weight: float | None = None,
                 pem_loss: dict | None = None,
                 log_prior: Sequence[float] | None = None,
                 init_std: float | None = 0.001,
                 init_mode: str = 'reference',
                 **kwargs) -> None:
        main_head = dict(main_head)
        check_head(main_head)
        NUM_PEM.check(num_pem)
        PEM_TYPE.check(pem_type)
        EVALUATED_SCALE.check(scale_factor)  # the model serves evaluation too, where s = inf is allowed
        if init_mode not in INIT_MODES:
            raise UserError(f'unknown init_mode {init_mode!r}; choose one of {", ".join(INIT_MODES)}')
        base = {k: copy.deepcopy(main_head[k]) for k in _BASE_KEYS if k in main_head}
        base['loss_decode'] = copy.deepcopy(main_head.get('loss_decode', dict(type='CrossEntropyLoss')))
        if isinstance(base.get('in_channels'), (list, tuple)) and base.get('input_transform') is None:
            # UPerHead / ANNHead set this inside their own __init__; BaseDecodeHead needs it explicitly.
            base['input_transform'] = 'multiple_select'
        base.update(kwargs)
        super().__init__(init_cfg=None, **base)
        self.init_std = init_std
        self.init_mode = init_mode
        self.num_pem = int(num_pem)
        self.pem_type = pem_type
        self.scale_factor = float(scale_factor)
        self.main_head = MODELS.build(main_head)
        self.pems = nn.ModuleList(MODELS.build(pem_config(main_head, pem_type))
                                  for _ in range(self.num_pem))
        ce = find_ce_loss(base['loss_decode'])
        loss_cfg = dict(type='OneWayLogisticLoss', align_corners=self.align_corners)
        loss_cfg['loss_weight'] = float(ce.get('loss_weight', 1.0) if pem_weight is None else pem_weight)
        loss_cfg['avg_non_ignore'] = bool(ce.get('avg_non_ignore', False))
        loss_cfg.update(pem_loss or {})
        self.pem_loss = MODELS.build(loss_cfg)
        if log_prior is not None:
            log_prior = torch.as_tensor(list(log_prior), dtype=torch.float32)
            if log_prior.numel() != self.num_classes:
                raise UserError(f'log_prior has {log_prior.numel()} entries but the model has '
                                f'{self.num_classes} classes')
        self.register_buffer('log_prior', log_prior, persistent=False)
        self._prior_sum: torch.Tensor | None = None
        self._prior_count = 0
        # The reference keeps the inherited classifier ``conv_seg`` (never used) and draws its init
        # first; the kit drops it (DDP would trip on a parameter without gradient) but keeps its
        # shape, so that every later draw comes from the same place of the random stream.
        self._unused_classifier_shape = tuple(self.conv_seg.weight.shape)
        if init_std is not None:
            self._reference_init(init_std)
        self.conv_seg = None

    def _reference_init(self, std: float) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def init_weights(self) -> None:
        """The runner's initialisation before training (see ``init_mode``); a checkpoint loaded
        afterwards (``load_from``, resume) overwrites it."""
        if self.init_mode == 'mmseg' or self.init_std is None:
            super().init_weights()
            return
        # 'reference': the wrapper's own init IS the reference init, drawn again here; the heads'
        # MMSeg init_cfg (conv_seg ~ N(0, 0.01^2)) never runs. The dropped classifier's draw
        # comes first, as in the reference.
        first = next(self.parameters(), None)
        device = first.device if first is not None else None
        torch.empty(self._unused_classifier_shape, device=device).normal_(0.0, self.init_std)
        self._reference_init(self.init_std)
        self._is_init = True

    # ----------------------------------------------------------------- forward
    def _pem_maps(self, inputs, size) -> list[torch.Tensor]:
        return [F.interpolate(pem(inputs), size=size, mode='bilinear', align_corners=self.align_corners)
                for pem in self.pems]

    def adjust(self, z: torch.Tensor, pem_maps: Sequence[torch.Tensor],
               scale_factor: float | None = None) -> torch.Tensor:
        """NPE-LA: ``z + (1/M) sum_m (U_m - mean(U_m)) / s`` with one mean per image and map."""
        s = self.scale_factor if scale_factor is None else float(scale_factor)
        out = z
        if pem_maps:
            centred = torch.stack([u - u.mean(dim=(1, 2, 3), keepdim=True) for u in pem_maps]).mean(0)
            self._record_prior(centred)
            out = out + centred / s
        if self.log_prior is not None:
            out = out - self.log_prior.to(out.dtype).view(1, -1, 1, 1) / s
        return out

    def forward(self, inputs):
        z = self.main_head(inputs)
        if self.training:
            return z, [pem(inputs) for pem in self.pems]
        maps = self._pem_maps(inputs, z.shape[2:])
        if self.eval_blocks is None:
            return self.adjust(z, maps)
        return self.adjust_blocks(z, maps, self.eval_blocks)

    # ----------------------------------------------------------------- several adjustments at once
    #: At inference, ``None`` (one output: :meth:`adjust` at ``scale_factor``) or a list of
    #: ``(kind, s)``: the output is their adjusted logits side by side on the channel axis
    #: (``len(eval_blocks) * num_classes`` channels), see :meth:`adjust_blocks`.
    eval_blocks: list[tuple[str, float]] | None = None
    #: Per-class log prior of the ``'counted'`` blocks (set by :func:`npe.evaluate`); None = ``log_prior``.
    counted_prior: torch.Tensor | None = None

    def adjust_blocks(self, z: torch.Tensor, pem_maps: Sequence[torch.Tensor],
                      blocks: Sequence[tuple[str, float]]) -> torch.Tensor:
        """The adjusted logits of every ``(kind, s)`` in ``blocks``, concatenated on the channels.

        ``kind``: ``'npe'`` = ``z + (1/M) sum_m (U_m - mean(U_m)) / s`` (NPE-LA; z when M = 0),
        plus ``- log_prior / s`` when the config itself sets ``log_prior`` (as :meth:`adjust`),
        ``'counted'`` = ``z - counted_prior / s`` (counted-prior logit adjustment of the main head, PEMs
        unused; ``log_prior`` when ``counted_prior`` is not set), ``'none'`` = z. ``s = inf`` is z for every kind. Each block is computed with exactly
        the operations of a one-block call, so a block's values do not depend on the other blocks
        (the one-pass sweep of :mod:`npe.sweep` relies on it).
        """
        centred = None
        if pem_maps:
            centred = torch.stack([u - u.mean(dim=(1, 2, 3), keepdim=True) for u in pem_maps]).mean(0)
            self._record_prior(centred)
        outs = []
        for kind, s in blocks:
            s = float(s)
            if kind not in ('npe', 'counted', 'none'):
                raise UserError(f"unknown adjustment {kind!r}; choose 'npe', 'counted' or 'none'")
            if kind == 'none' or math.isinf(s):
                outs.append(z)
            elif kind == 'npe':  # exactly adjust(): the config's own log_prior applies too, if set
                out = z
                if centred is not None:
                    out = out + centred / s
                if self.log_prior is not None:
                    out = out - self.log_prior.to(out.dtype).view(1, -1, 1, 1) / s
                outs.append(out)
            else:
                prior = self.counted_prior if self.counted_prior is not None else self.log_prior
                if prior is None:
                    raise UserError('counted-prior adjustment needs log_prior (one value per class)')
                outs.append(z - prior.to(z.dtype).view(1, -1, 1, 1) / s)
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    # ----------------------------------------------------------------- losses
    def loss(self, inputs, batch_data_samples, train_cfg) -> dict:
        z = self.main_head(inputs)
        pem_logits = [pem(inputs) for pem in self.pems]
        return self.loss_by_feat((z, pem_logits), batch_data_samples)

    def loss_by_feat(self, seg_logits, batch_data_samples) -> dict:
        z, pem_logits = seg_logits
        seg_label = self._stack_batch_gt(batch_data_samples)
        size = seg_label.shape[2:]
        z = F.interpolate(z, size=size, mode='bilinear', align_corners=self.align_corners)
        seg_weight = self.sampler.sample(z, seg_label) if self.sampler is not None else None
        seg_label = seg_label.squeeze(1)
        losses: dict = {}
        loss_fns = self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) else [self.loss_decode]
        for loss_fn in loss_fns:
            value = loss_fn(z, seg_label, weight=seg_weight, ignore_index=self.ignore_index)
            losses[loss_fn.loss_name] = losses.get(loss_fn.loss_name, 0) + value
        adjusted = z
        if pem_logits:
            losses[self.pem_loss.loss_name] = self.pem_loss(
                pem_logits, seg_label, weight=seg_weight, ignore_index=self.ignore_index)
            maps = [F.interpolate(u, size=size, mode='bilinear', align_corners=self.align_corners)
                    for u in pem_logits]
            adjusted = z + torch.stack(maps).sum(0) / (len(maps) * self.scale_factor)
        losses['acc_seg'] = accuracy(adjusted.detach(), seg_label, ignore_index=self.ignore_index)
        return losses

    # ----------------------------------------------------------------- learned prior
    def start_prior_recording(self) -> None:
        """Start accumulating the per-class mean of the centred PEM output at inference."""
        self._prior_sum = None
        self._prior_count = 0
        self._recording = True

    def stop_prior_recording(self) -> list[float] | None:
        """Stop recording; return the per-class mean of the centred PEM output (None without PEMs)."""
        self._recording = False
        if self._prior_sum is None or self._prior_count == 0:
            return None
        return (self._prior_sum / self._prior_count).tolist()

    def _record_prior(self, centred: torch.Tensor) -> None:
        if not getattr(self, '_recording', False):
            return
        total = centred.detach().double().sum(dim=(0, 2, 3)).cpu()
        self._prior_sum = total if self._prior_sum is None else self._prior_sum + total
        self._prior_count += centred.shape[0] * centred.shape[2] * centred.shape[3]
