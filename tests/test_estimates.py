"""``npe-repro RECIPE --dry-run`` prints a time and disk estimate for every recipe (npe.estimates): no
training, the models counted on PyTorch's meta device (no weights, no arithmetic)."""
from __future__ import annotations

import re

import pytest

from npe.estimates import CPU_FLOPS, model_cost
from npe.jobs import job_train_config, plan_runs
from npe.recipes import list_recipes, load_recipe
from npe.run import run_recipe

pytestmark = pytest.mark.filterwarnings('ignore')


@pytest.mark.parametrize('name', list_recipes())
def test_every_recipe_dry_run_prints_an_estimate(name, tmp_path, capsys):
    run_recipe(name, dry_run=True, data_root=str(tmp_path / 'data'), results_dir=str(tmp_path / 'results'),
               work_dir=str(tmp_path / 'work'))
    out = capsys.readouterr().out
    assert re.search(r'estimate for this machine, (CPU with \d+ cores|\d+ CUDA GPUs \(\d+ used\)) '
                     r'\(an ESTIMATE, not a measurement\):', out), out
    training = re.search(r'training: about ([\dhmins ]+) = (\d+) runs x (\d+) iterations x ([\d.e+-]+) s', out)
    assert training, out
    recipe = load_recipe(name)
    assert int(training.group(2)) == len(plan_runs(recipe)) and float(training.group(4)) > 0
    assert re.search(r'disk: data (about|at most) [\d.]+ [MG]B', out), out
    assert re.search(r'work dirs about [\d.]+ [MG]B = \d+ runs x \d+ checkpoints', out), out
    assert not any(tmp_path.iterdir())   # a plan: nothing generated, fetched or written


def test_cpu_figure_is_the_recipes_own_where_it_sets_one_else_counted(tmp_path):
    long = load_recipe('longtail_synth_long')
    assert long.seconds_per_iteration == 0.125
    short = load_recipe('longtail_synth')   # the same model, no figure of its own: counted
    cfg = job_train_config(short, plan_runs(short)[0], tmp_path, None, quiet=True)
    cost = model_cost(cfg)
    assert cost is not None and 0.3e6 < cost.params < 0.6e6
    # the rate was measured on this model: the counted figure lands near the recipe's measured one
    per = cost.forward_flops * 3 * int(cfg.npe.distributed['total_batch']) / CPU_FLOPS
    assert 0.08 < per < 0.2
