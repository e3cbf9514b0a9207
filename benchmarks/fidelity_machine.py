"""Fidelity on the same kind of machine: the kit against the reference code run on a CPU like this one.

Float results depend on the CPU's kernels (docs/environment.md): where this machine rounds otherwise
than the one that wrote ``reference_losses.json``, even the reference code's own curves leave that
file within a few iterations. The fixture therefore keeps, besides its own files, the reference code's
numbers recorded on other machine kinds (``machines/<name>.json``, written by
``fidelity_reference.py``). A kit run whose 0-PEM curve equals one machine's bit for bit has shown that
its kernels round as that machine's did; there its 1-PEM curve, its trained weights and every row must
be equal too: :func:`same_machine` says whether they are.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

#: The loss terms of a curve row, after the iteration (the columns of reference_losses.json).
LOSS_TERMS = ('loss', 'decode.loss_ce', 'decode.loss_one_way_logistic')
#: The yardstick of reference_losses.json / reference_results.json: the reference code on the CPU of
#: the person who measured them (AVX-512; see benchmarks/fidelity_fixture/README.md).
FIXTURE_MACHINE = 'fixture (AVX-512)'


def yardsticks(fixture: Path) -> dict[str, dict]:
    """Every recorded run of the reference code, by machine: the fixture's own files first, then
    each ``machines/<name>.json``. Each has ``runs`` (loss terms per ``num_pem=M,seed=S``),
    ``results`` (mIoU rows per seed) and ``weights`` (digests per run; none for the fixture's)."""
    out = {FIXTURE_MACHINE: {
        'runs': json.loads((fixture / 'reference_losses.json').read_text())['runs'],
        'results': json.loads((fixture / 'reference_results.json').read_text())['seeds'],
        'weights': {}}}
    for path in sorted((fixture / 'machines').glob('*.json')):
        out[path.stem] = json.loads(path.read_text())
    return out


def matching_yardstick(yards: dict[str, dict], kit_runs: dict[str, list]) -> str | None:
    """The machine whose reference curves the kit's 0-PEM curves equal bit for bit (every 0-PEM run
    given, over the iterations both have): proof that this CPU's kernels round as that one's did.
    None: no recorded machine rounds as this one."""
    plain = {k: v for k, v in kit_runs.items() if k.startswith('num_pem=0,') and v}
    for name, yard in yards.items():
        if plain and all(k in yard['runs'] and _same_start(v, yard['runs'][k]) for k, v in plain.items()):
            return name
    return None


def _same_start(a: list, b: list) -> bool:
    """Equal over the iterations both have (and both have some)."""
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]


def first_departure(kit: list[list], ref: list[list]) -> int | None:
    """The first iteration at which any logged term differs from the reference's in any bit (None:
    none over the iterations both have)."""
    for got, want in zip(kit, ref):
        if any(w is not None and g != w for g, w in zip(got[1:], want[1:])):
            return got[0]
    return None


def weights_digest(checkpoint: Path) -> str:
    """sha256 over a checkpoint's trained weights: every state-dict tensor by name, dtype, shape and
    bytes, in name order. Equal digests: the same model, bit for bit. The reference wrapper's
    inherited classifier (``npe.reference.UNUSED_PREFIX``) is left out: its forward never uses it
    (no gradient, never changes) and the kit's wrapper drops it, so it is not part of the model that
    predicts."""
    from npe.checkpoint import load_checkpoint
    from npe.reference import UNUSED_PREFIX

    state = load_checkpoint(checkpoint)['state_dict']
    h = hashlib.sha256()
    for name in sorted(k for k in state if not k.startswith(UNUSED_PREFIX)):
        t = state[name].detach().cpu().contiguous()
        h.update(f'{name}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def training_curve(work: Path) -> list[list]:
    """Rows ``[iter, loss, ce, pem]`` of a training logged every iteration (its first scalars.json
    that holds losses: evaluations of the same work dir add others)."""
    for scalars in sorted(work.glob('*/vis_data/scalars.json')):
        records = [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]
        rows = [[r['iter']] + [r.get(t) for t in LOSS_TERMS] for r in records if 'loss' in r]
        if rows:
            return rows
    return []


def same_machine(yards: dict[str, dict], kit_curves: dict[str, list], kit_weights: dict[str, str],
                 kit_rows: dict[int, dict]) -> dict | None:
    """The kit against the reference code on a machine that rounds as this one (None: no recorded
    machine does): per run, where the curve departs (None = never) and whether the weights are the
    same; per seed, kit minus reference for each row that machine's reference has."""
    name = matching_yardstick(yards, kit_curves)
    if name is None:
        return None
    yard = yards[name]
    runs = {}
    for key, curve in kit_curves.items():
        ref = yard['runs'].get(key)
        digest = yard['weights'].get(key)
        runs[key] = {'iterations': min(len(curve), len(ref or [])),
                     'first_departure': None if ref is None else first_departure(curve, ref),
                     'same_weights': None if digest is None or key not in kit_weights
                     else kit_weights[key] == digest}
    rows = {seed: {row: round(value - yard['results'][str(seed)][row], 2)
                   for row, value in kit_rows[seed].items() if row in yard['results'].get(str(seed), {})}
            for seed in kit_rows}
    return {'machine': name, 'runs': runs, 'rows': rows}


def render(report: dict | None) -> str:
    """:func:`same_machine` as Markdown."""
    if report is None:
        return ('No recorded machine rounds as this one (its 0-PEM curves equal none of them): '
                'record one with benchmarks/fidelity_reference.py.')
    lines = [f"## Same machine: the reference code recorded on `{report['machine']}`\n",
             '| run | iterations compared | first departure | same weights |', '|---|---|---|---|']
    for key, r in report['runs'].items():
        same = {True: 'yes', False: '**no**', None: 'not recorded'}[r['same_weights']]
        lines.append(f"| {key} | {r['iterations']} | {r['first_departure'] or 'never'} | {same} |")
    lines += ['', '| seed | row | kit - reference |', '|---|---|---|']
    for seed, rows in report['rows'].items():
        lines += [f'| {seed} | {row} | {diff:+.2f} |' for row, diff in rows.items()]
    return '\n'.join(lines)
