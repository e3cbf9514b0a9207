"""`auto` scale factor: chosen on the holdout split only (the validation split is never read), ties
go to the smaller s, every adjustment kind gets its own choice, and a recipe whose dataset has no
holdout cannot ask for auto. Real MMEngine evaluations of a model trained on `smoke`."""
from __future__ import annotations

import math
import shutil

import pytest
import yaml

import npe
from npe import datasets, recipes
from npe.errors import RecipeError, UserError
from npe.run import choose_scales

LOG_PRIOR = [math.log(0.6), math.log(0.3), math.log(0.1)]


def _recipe(tmp_path, dataset='smoke', candidates=(0.5, 1, 2)):
    data = {'name': 'auto_t', 'title': 't', 'dataset': dataset, 'base_config': 'npe::smoke_unet.py',
            'protocol': 'fixed', 'metrics': ['mIoU'], 'seeds': [0],
            'auto_scale': {'metric': 'mIoU', 'candidates': list(candidates)},
            'variants': [{'name': 'baseline', 'num_pem': 0},
                         {'name': 'npe1', 'num_pem': 1, 'scale_factors': [1, 'auto']}]}
    path = tmp_path / 'auto_t.yaml'
    path.write_text(yaml.safe_dump(data))
    return recipes.load_recipe(path)


@pytest.fixture(scope='module')
def model_without_validation(tmp_path_factory):
    """A 1-PEM smoke model whose data folder then loses its validation split entirely."""
    root = tmp_path_factory.mktemp('auto')
    folder = datasets.get('smoke').prepare(root / 'data')
    run = npe.train('npe::smoke_unet.py', num_pem=1, seed=0, protocol='fixed', work_dir=root / 'run',
                    data_root=root / 'data',
                    cfg_options={'train_cfg.max_iters': 6, 'train_cfg.val_interval': 100,
                                 'default_hooks.checkpoint.interval': 6})
    for part in ('images', 'annotations'):
        shutil.rmtree(folder / part / 'validation')
    return run['work_dir'], run['checkpoint'], folder


@pytest.mark.integration
def test_auto_reads_the_holdout_only_and_each_kind_chooses(model_without_validation, tmp_path):
    work_dir, checkpoint, folder = model_without_validation
    recipe = _recipe(tmp_path)
    chosen = choose_scales(recipe, work_dir, checkpoint, LOG_PRIOR, ['npe', 'counted'])
    holdout = sorted((folder / 'images' / 'holdout').iterdir())
    for kind in ('npe', 'counted'):
        s, info = chosen[kind]
        assert info['split'] == 'holdout' and info['metric'] == 'mIoU'
        assert set(info['candidates']) == {'0.5', '1', '2'}
        best = max(info['candidates'].values())
        # the chosen s has the best holdout score, and it is the smallest s with that score
        assert info['candidates'][recipes.scale_label(s)] == best
        assert s == min(c for c in (0.5, 1.0, 2.0) if info['candidates'][recipes.scale_label(c)] == best)
    # the scores are those of a plain holdout evaluation (the validation folder does not even exist)
    rows = npe.evaluate(work_dir, checkpoint=checkpoint, scale_factors=[0.5, 1, 2], data_split='holdout',
                        record_prior=False, out_dir=tmp_path / 'plain')
    assert {recipes.scale_label(r['scale_factor']): r['metrics']['mIoU'] for r in rows} == \
        chosen['npe'][1]['candidates']
    assert rows[0]['num_images'] == len(holdout)
    with pytest.raises(UserError, match='validation'):  # and validation really is gone
        npe.evaluate(work_dir, checkpoint=checkpoint, scale_factors=[1], out_dir=tmp_path / 'v')


@pytest.mark.integration
def test_ties_go_to_the_smaller_s(model_without_validation, tmp_path):
    work_dir, checkpoint, _ = model_without_validation
    # s this large leaves no adjustment: every candidate scores the same, whatever their order
    recipe = _recipe(tmp_path, candidates=(4e9, 1e9, 2e9))
    s, info = choose_scales(recipe, work_dir, checkpoint, LOG_PRIOR, ['npe'])['npe']
    assert len(set(info['candidates'].values())) == 1
    assert s == 1e9


def test_no_auto_rows_no_holdout_pass(tmp_path):
    recipe = _recipe(tmp_path)
    assert choose_scales(recipe, tmp_path / 'nothing', 'none.pth', LOG_PRIOR, []) == {}


def test_recipe_without_holdout_cannot_ask_for_auto(tmp_path):
    assert datasets.get('stare').holdout_split is None
    with pytest.raises(RecipeError, match='auto_scale.*no held-out'):
        _recipe(tmp_path, dataset='stare')
