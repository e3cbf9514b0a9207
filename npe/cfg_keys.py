"""``--cfg-options`` keys the config does not have: one warning line naming the nearest known key.

A warning, not an error: MMSeg users add keys through ``--cfg-options`` as a matter of course
(``model.decode_head.loss_decode.avg_non_ignore=True``, ``model.test_cfg.mode=slide``: keys that many
base configs leave out and the classes accept), as MMSeg's own tools allow; an error would break
these uses, and a flag to allow them would be one more thing every such user must learn. A misspelt
key, on the other hand, is silently a no-op or fails far from its cause; a line naming the nearest
existing key catches the typo and costs the new key nothing.
"""
from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def _flat_keys(node: Any, prefix: str = '') -> list[str]:
    """Every dotted key path of the mappings in ``node`` (lists are not entered)."""
    keys = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f'{prefix}{key}'
            keys.append(path)
            keys += _flat_keys(value, path + '.')
    return keys


def unknown_keys(cfg: Any, options: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """``(key, nearest known key or None)`` for each key of ``options`` that names a part the config
    does not have. Paths through lists or into plain values are left to the merge, which refuses
    the malformed ones itself."""
    found = []
    everything: list[str] | None = None
    if not isinstance(cfg, Mapping):   # mmengine's Config wraps its ConfigDict (a dict)
        cfg = cfg.to_dict()
    for key in options:
        node: Any = cfg
        parts = str(key).split('.')
        for depth, part in enumerate(parts):
            if not isinstance(node, Mapping):
                break
            if part in node:
                node = node[part]
                continue
            prefix = '.'.join(parts[:depth])
            siblings = difflib.get_close_matches(part, [str(k) for k in node], n=1, cutoff=0.6)
            if siblings:
                nearest: str | None = '.'.join([*parts[:depth], siblings[0]]) if prefix else siblings[0]
            else:
                everything = everything if everything is not None else _flat_keys(cfg)
                nearest = next(iter(difflib.get_close_matches(str(key), everything, n=1, cutoff=0.8)), None)
            found.append((str(key), nearest))
            break
    return found


def warn_unknown_keys(cfg: Any, options: Mapping[str, Any] | None) -> list[tuple[str, str | None]]:
    """Log one warning per unknown key of ``options`` (a ``warning:`` line in the commands); return them."""
    found = unknown_keys(cfg, options or {})
    for key, nearest in found:
        hint = f'did you mean {nearest}? ' if nearest else ''
        log.warning('--cfg-options %s: the config has no such key; %s(it is added as a new key)', key, hint)
    return found


def typo_in_options(exc: TypeError, options: Mapping[str, Any] | None) -> str | None:
    """The one-line message for a class that refused a keyword a ``--cfg-options`` key added
    (``IterBasedTrainLoop.__init__() got an unexpected keyword argument 'max_iter'``), or None when
    the error is not of that kind: the key whose last part is the refused keyword, and its nearest
    known key (already named by :func:`warn_unknown_keys`)."""
    import re

    refused = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
    if refused is None:
        return None
    key = next((k for k in options or {} if str(k).split('.')[-1] == refused.group(1)), None)
    if key is None:
        return None
    return (f'--cfg-options {key}: {exc}; the config has no such key (see the warning above for the '
            'nearest one): fix or remove it')
