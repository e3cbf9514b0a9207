"""Loss curves read from a real MMEngine run's scalars.json (not keys the test wrote itself)."""
from __future__ import annotations

import json

from npe.training import training_losses


def test_the_pem_and_cross_entropy_curves_are_read_apart(local_smoke):
    work = local_smoke / 'work_dirs' / 'smoke'
    npe1 = training_losses(work / 'npe1__seed0')
    assert set(npe1) == {'loss', 'loss_ce', 'loss_one_way_logistic'}
    assert len(npe1['loss']) == len(npe1['loss_ce']) == len(npe1['loss_one_way_logistic']) >= 5
    for (i, total), (j, ce), (k, pem) in zip(npe1['loss'], npe1['loss_ce'], npe1['loss_one_way_logistic'],
                                             strict=True):
        assert i == j == k and abs(total - (ce + pem)) < 1e-4 * total  # the total is their sum
    baseline = training_losses(work / 'baseline__seed0')
    assert set(baseline) == {'loss', 'loss_ce'}  # no PEM, no PEM loss
    result = json.loads((local_smoke / 'results' / 'smoke' / 'npe1__seed0__s1.json').read_text())
    assert result['log'] == json.loads(json.dumps(npe1))  # what the result file records
