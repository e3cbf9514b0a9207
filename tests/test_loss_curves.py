"""Loss curves read from a real MMEngine run's scalars.json (not keys the test wrote itself), and the
loss figure drawn from the result files that run wrote: the total, the cross-entropy and the PEM
loss apart. MMEngine logs a decode head's losses with its prefix (``decode.loss_ce``,
``decode.loss_one_way_logistic``); a reader of the bare names finds only the total."""
from __future__ import annotations

import json

from npe import plots, recipes
from npe import results as result_files
from npe.work_dir import training_losses


def test_the_pem_and_cross_entropy_curves_are_read_apart(local_smoke):
    work = local_smoke / 'work_dirs' / 'smoke'
    scalars = [json.loads(line) for path in sorted((work / 'npe1__seed0').glob('*/vis_data/scalars.json'))
               for line in path.read_text().splitlines() if line.strip()]
    logged = set().union(*scalars)
    # what MMEngine really writes: the prefixed names, never the bare ones (the old reader's keys)
    assert {'decode.loss_ce', 'decode.loss_one_way_logistic'} <= logged, logged
    assert not {'loss_ce', 'loss_one_way_logistic'} & logged, logged
    npe1 = training_losses(work / 'npe1__seed0')
    assert set(npe1) == {'loss', 'loss_ce', 'loss_one_way_logistic'}, set(npe1)
    assert len(npe1['loss']) == len(npe1['loss_ce']) == len(npe1['loss_one_way_logistic']) >= 5
    for (i, total), (j, ce), (k, pem) in zip(npe1['loss'], npe1['loss_ce'], npe1['loss_one_way_logistic'],
                                             strict=True):
        assert i == j == k and abs(total - (ce + pem)) < 1e-4 * total  # the total is their sum
        assert ce > 0 and pem > 0
    baseline = training_losses(work / 'baseline__seed0')
    assert set(baseline) == {'loss', 'loss_ce'}  # no PEM, no PEM loss
    result = json.loads((local_smoke / 'results' / 'smoke' / 'npe1__seed0__s1.json').read_text())
    assert result['log'] == json.loads(json.dumps(npe1))  # what the result file records


def test_the_loss_figure_of_a_real_run_has_the_parts_apart(local_smoke):
    """The figure drawn from the real run's result files: three panels (total, cross-entropy, PEM),
    both models in the first two, only the NPE model in the PEM panel."""
    recipe = recipes.load_recipe('smoke')
    results = result_files.read_results(local_smoke / 'results', recipe.name)
    fig = plots.loss_figure(recipe, results)
    assert fig is not None
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f'smoke: {title}' for _, title in plots.LOSS_PARTS], titles
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes if ax.get_legend()]
    assert legends == [['baseline (seeds 0)', 'npe1 (seeds 0)']] * 2 + [['npe1 (seeds 0)']], legends
    # each line is the result file's curve, point for point
    pem_line = fig.axes[2].get_lines()[0]
    assert [[float(x), float(y)] for x, y in pem_line.get_xydata()] == \
        json.loads((local_smoke / 'results' / 'smoke' / 'npe1__seed0__s1.json').read_text())['log']['loss_one_way_logistic']
