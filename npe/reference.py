"""Work dirs and checkpoints of the reference code, and a strict check of every checkpoint evaluated.

A run of the reference's ``tools/train.py`` dumps a config that imports the reference's own modules
(``npe.multi_head_wrapper``, ``npe.multi_head_custom_loss``, ``npe.freeze_backbone``) and names its
wrapper head type; the kit's wrapper keeps the registry name ``MultiHeadWrapper`` and the module
layout of docs/method.md section 1 (``main_head``, ``pems``), so such a config is translated in place:
the reference modules are dropped from ``custom_imports`` (the kit registers its own), the wrapper
keeps the options the kit's wrapper knows (``num_pem``, ``pem_type``, ``scale_factor``, ...), hooks
of the reference's modules (training only) are removed. An option the kit does not know is an error.

Its checkpoints hold the same ``decode_head.main_head.*`` and ``decode_head.pems.*`` weights plus the
reference wrapper's inherited, never used classifier ``decode_head.conv_seg``: that one is ignored
with a note. :func:`load_weights` loads every checkpoint (the kit's too) with the model's keys checked
one by one, so a checkpoint that does not fit is a clear error instead of MMEngine's non-strict
loading silently evaluating freshly initialised weights.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from npe.errors import ConfigError, RunError, arg
from npe.options import DEFAULTS

#: Modules of the reference code its dumped configs import.
REFERENCE_MODULES = ('npe.multi_head_wrapper', 'npe.multi_head_custom_loss', 'npe.freeze_backbone')
#: The reference wrapper's inherited classifier: in its checkpoints, never used.
UNUSED_PREFIX = 'decode_head.conv_seg.'


def is_reference_config(cfg) -> bool:
    """Whether a config (loaded without importing its custom modules) is one of the reference code."""
    imports = (cfg.get('custom_imports') or {}).get('imports', []) or []
    return any(str(m) in REFERENCE_MODULES for m in imports)


def _wrapper_options() -> set[str]:
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead

    from npe.models.wrapper import MultiHeadWrapper

    names = set()
    for fn in (MultiHeadWrapper.__init__, BaseDecodeHead.__init__):
        names |= {p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != 'self'}
    return names


def translate_config(cfg, path: str | Path) -> str:
    """Turn a reference config into the kit's, in place; return the one line saying what was done."""
    imports = [m for m in (cfg.get('custom_imports') or {}).get('imports', []) or []
               if str(m) not in REFERENCE_MODULES]
    cfg.custom_imports = dict(imports=imports, allow_failed_imports=False)
    model = cfg.get('model') or {}
    head = model.get('decode_head') or {}
    head_type = str(head.get('type', '')).split('.')[-1]
    if head_type != 'MultiHeadWrapper':
        raise ConfigError(f'{path}: a reference config whose decode_head is {head.get("type")!r}, not the '
                          'MultiHeadWrapper; npe-test evaluates NPE runs')
    head.type = 'MultiHeadWrapper'
    if 'main_head' not in head and 'base_head' in head:
        head.main_head = head.pop('base_head')
    known = _wrapper_options() | {'type'}
    unknown = sorted(k for k in head if k not in known)
    if unknown:
        raise ConfigError(f'{path}: decode_head option(s) {", ".join(unknown)} of the reference config have no '
                          'counterpart in the kit\'s MultiHeadWrapper; remove them from a copy of the config '
                          f'and give that as {arg("config")}')
    if not isinstance(head.get('main_head'), dict):
        raise ConfigError(f'{path}: decode_head has no main_head (the original decode head); cannot '
                          'translate this reference config')
    hooks = cfg.get('custom_hooks') or []
    from mmengine.registry import HOOKS

    cfg.custom_hooks = [h for h in hooks if HOOKS.get(str(h.get('type', ''))) is not None]
    return (f'{Path(path).name} is a config of the reference code: translated to the kit\'s '
            f'(MultiHeadWrapper, num_pem={head.get("num_pem", DEFAULTS.num_pem)}, '
            f'pem_type={head.get("pem_type", DEFAULTS.pem_type)}, '
            f's={head.get("scale_factor", DEFAULTS.scale_factor)}; {len(hooks) - len(cfg.custom_hooks)} training hook(s) of '
            'the reference dropped)')


def wrap_plain_config(cfg, path: str | Path) -> str:
    """Make a plain MMSeg config (no NPE head) evaluable in place: its decode head inside a
    ``MultiHeadWrapper`` with no PEM, so it predicts exactly as before and counted LA (``'counted'``
    blocks) can adjust it; the auxiliary head (training only) is dropped. Returns a note."""
    from npe.config import CUSTOM_IMPORTS, register
    from npe.models.wrapper import check_head

    register()
    head = (cfg.get('model') or {}).get('decode_head')
    if not isinstance(head, dict):
        raise ConfigError(f'{path}: model.decode_head is {type(head).__name__}; npe-test evaluates one decode head')
    check_head(head)
    cfg.model.decode_head = dict(type='MultiHeadWrapper', main_head=dict(head), num_pem=0,
                                 pem_type=DEFAULTS.pem_type, scale_factor=DEFAULTS.scale_factor)
    cfg.model.pop('auxiliary_head', None)
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    cfg.custom_imports = dict(imports=imports + [m for m in CUSTOM_IMPORTS if m not in imports],
                              allow_failed_imports=False)
    return (f'{Path(path).name} is a plain MMSeg config (decode head {head.get("type")}): its head evaluated '
            'alone, with no PEM (s changes nothing; --counted-la adjusts it)')


def _bare(model):
    """The model whose ``state_dict`` keys a checkpoint holds (inside DDP and TTA wrappers)."""
    while hasattr(model, 'module'):
        model = model.module
    return model


def read_checkpoint(checkpoint: str | Path) -> Any:
    """The checkpoint file ``checkpoint`` loaded (:func:`npe.checkpoint.load_checkpoint`): one read that
    :func:`load_weights` and a caller wanting its ``meta`` share. A damaged or foreign file: RunError."""
    from npe.checkpoint import load_checkpoint

    try:
        return load_checkpoint(checkpoint)
    except Exception as exc:  # a damaged or foreign file
        raise RunError(f'checkpoint {checkpoint} cannot be read: {type(exc).__name__}: '
                       f'{" ".join(str(exc).split())[:200]}') from None


def load_weights(model, checkpoint: str | Path, loaded: Any = None) -> list[str]:
    """Load ``checkpoint`` into ``model`` (DDP / TTA wrappers allowed) with every key checked; return
    notes (the reference's unused classifier ignored). Anything else that does not fit: RunError.

    ``loaded``: the file as :func:`read_checkpoint` returned it, when the caller has read it already
    (``checkpoint`` then only names it in messages); None reads it here.
    """
    if loaded is None:
        loaded = read_checkpoint(checkpoint)
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise RunError(f'checkpoint {checkpoint} holds no state_dict')
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    target = _bare(model)
    expected = set(target.state_dict())
    notes = []
    if not any(k.startswith('decode_head.main_head.') for k in state) and \
            any(k.startswith('decode_head.base_head.') for k in state):
        state = {k.replace('decode_head.base_head.', 'decode_head.main_head.', 1): v for k, v in state.items()}
        notes.append('its original head is stored as decode_head.base_head: loaded as decode_head.main_head')
    if any(k.startswith('decode_head.main_head.') for k in expected) and \
            not any(k.startswith(('decode_head.main_head.', 'decode_head.pems.')) for k in state):
        # a plain MMSeg checkpoint: its decode head is the wrapper's main head
        state = {('decode_head.main_head.' + k[len('decode_head.'):] if k.startswith('decode_head.') else k): v
                 for k, v in state.items()}
        notes.append('a plain MMSeg checkpoint: decode_head loaded as decode_head.main_head')
    aux = [k for k in state if k.startswith('auxiliary_head.') and k not in expected]
    if aux:
        notes.append(f'the checkpoint\'s auxiliary head ({len(aux)} weights, training only) is not used')
        state = {k: v for k, v in state.items() if k not in aux}
    unused = [k for k in state if k.startswith(UNUSED_PREFIX) and k not in expected]
    if unused:
        count = sum(int(state[k].numel()) for k in unused)
        notes.append(f'ignored {", ".join(unused)} ({count} parameters): the reference wrapper\'s inherited '
                     'classifier, which it never uses')
        state = {k: v for k, v in state.items() if k not in unused}
    if not any(k.startswith('decode_head.pems.') for k in expected):
        pems = [k for k in state if k.startswith('decode_head.pems.')]
        if pems:  # e.g. --cfg-options model.decode_head.num_pem=0: the main head alone
            notes.append(f'the checkpoint\'s {len(pems)} PEM weight(s) are not used (the model has no PEMs)')
            state = {k: v for k, v in state.items() if k not in pems}
    missing = sorted(expected - set(state))
    extra = sorted(set(state) - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f'{len(missing)} weight(s) of the model not in it (e.g. {", ".join(missing[:3])})')
        if extra:
            parts.append(f'{len(extra)} weight(s) the model does not have (e.g. {", ".join(extra[:3])})')
        raise RunError(f'checkpoint {checkpoint} does not fit the config\'s model: {"; ".join(parts)}; '
                       f'give this run\'s checkpoint ({arg("checkpoint")}) or its config ({arg("config")})')
    shapes = [k for k, v in state.items() if tuple(v.shape) != tuple(target.state_dict()[k].shape)]
    if shapes:
        k = shapes[0]
        raise RunError(f'checkpoint {checkpoint} does not fit the config\'s model: {k} has shape '
                       f'{tuple(state[k].shape)}, the model {tuple(target.state_dict()[k].shape)}'
                       + (f' (and {len(shapes) - 1} more)' if len(shapes) > 1 else ''))
    target.load_state_dict(state, strict=True)
    return notes
