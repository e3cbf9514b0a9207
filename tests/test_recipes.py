"""Recipe schema: committed recipes load; every broken rule gives one line naming file and key, exit 2."""
from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path

import pytest
import yaml

from npe import recipes
from npe.cli import recipes as recipes_cli
from npe.cli import tables as tables_cli
from npe.errors import UserError, cli_entry
from npe.paths import repo_root
from npe.results import result_stem

MMSEG_STARE = "mmseg::unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py"
STARE_CKPT = ("https://download.openmmlab.com/mmsegmentation/v0.5/unet/fcn_unet_s5-d16_128x128_40k_stare/"
              "fcn_unet_s5-d16_128x128_40k_stare_20201223_191051-7d77e78b.pth")
PAPER_RECIPES = ["stare_unet", "stare_unet_pspnet", "stare_unet_deeplabv3", "ade20k_pspnet_r50",
                 "ade20k_deeplabv3_r50", "ade20k_upernet_r50", "stare_ablations"]
ALL_RECIPES = PAPER_RECIPES + ["smoke", "quick", "longtail_synth", "longtail_synth_long"]


def valid_recipe(name: str = "t") -> dict:
    return {
        "name": name,
        "title": "test recipe",
        "paper_table": None,
        "dataset": "stare",
        "base_config": MMSEG_STARE,
        "load_from": {"url": STARE_CKPT, "sha256": None},
        "protocol": "upstream",
        "metrics": ["mIoU", "mDice"],
        "seeds": [0, 1],
        "variants": [
            {"name": "baseline", "num_pem": 0},
            {"name": "npe1", "num_pem": 1, "scale_factors": [1, 2]},
        ],
    }


def write(tmp_path: Path, data, name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


# ---------------------------------------------------------------------------------------------- committed


def test_all_committed_recipes_are_listed():
    assert set(ALL_RECIPES) <= set(recipes.list_recipes())


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_paper_recipes_load_strictly(name):
    r = recipes.load_recipe(name)  # resolves the mmseg:: base config inside the installed package
    assert r.name == name and r.path == repo_root() / "recipes" / f"{name}.yaml"
    assert r.base_config.startswith("mmseg::") and r.base_config_path.is_file()
    assert r.protocol == "upstream"
    assert r.metrics == (("mIoU", "mDice") if r.dataset == "stare" else ("mIoU",))
    assert r.seeds == (0, 1, 2)
    assert r.counted_la and r.baseline is not None and r.baseline.name == "baseline"
    assert r.sha256 == hashlib.sha256(r.path.read_bytes()).hexdigest()
    # the checkpoint's file name carries the first 8 hex digits of its sha256
    assert r.load_from is not None and r.load_from.sha256_prefix is not None
    assert r.load_from.url.endswith(f"-{r.load_from.sha256_prefix}.pth")
    # never invented: the paper's numbers are all null in committed recipes
    assert r.paper and all(v is None for row in r.paper.values() for v in row.values())
    assert r.paper_table
    # NPE with 1 and 2 PEMs at s in {1, 2}
    pems = {v.num_pem for v in r.variants}
    assert {0, 1, 2} <= pems
    for v in r.variants:
        if v.num_pem in (1, 2) and v.name in ("npe1", "npe2"):
            assert {1.0, 2.0} <= set(v.scale_factors)


#: (base config, release checkpoint under https://download.openmmlab.com/mmsegmentation/v0.5/) of
#: every paper recipe, as docs/datasets.md lists them; written out here so the test runs on
#: any clone (it used to read the spec folder and skip where it is not mounted).
RELEASES = {
    "stare_unet": ("unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py",
                   "unet/fcn_unet_s5-d16_128x128_40k_stare/fcn_unet_s5-d16_128x128_40k_stare_20201223_191051-7d77e78b.pth"),
    "stare_unet_pspnet": ("unet/unet-s5-d16_pspnet_4xb4-40k_stare-128x128.py",
                          "unet/pspnet_unet_s5-d16_128x128_40k_stare/"
                          "pspnet_unet_s5-d16_128x128_40k_stare_20201227_181818-3c2923c4.pth"),
    "stare_unet_deeplabv3": ("unet/unet-s5-d16_deeplabv3_4xb4-40k_stare-128x128.py",
                             "unet/deeplabv3_unet_s5-d16_128x128_40k_stare/"
                             "deeplabv3_unet_s5-d16_128x128_40k_stare_20201226_094047-93dcb93c.pth"),
    "ade20k_pspnet_r50": ("pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py",
                          "pspnet/pspnet_r50-d8_512x512_80k_ade20k/pspnet_r50-d8_512x512_80k_ade20k_20200615_014128-15a8b914.pth"),
    "ade20k_deeplabv3_r50": ("deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py",
                             "deeplabv3/deeplabv3_r50-d8_512x512_80k_ade20k/"
                             "deeplabv3_r50-d8_512x512_80k_ade20k_20200614_185028-0bb3f844.pth"),
    "ade20k_upernet_r50": ("upernet/upernet_r50_4xb4-80k_ade20k-512x512.py",
                           "upernet/upernet_r50_512x512_80k_ade20k/upernet_r50_512x512_80k_ade20k_20200614_144127-ecc8377b.pth"),
    "stare_ablations": ("unet/unet-s5-d16_fcn_4xb4-40k_stare-128x128.py",
                        "unet/fcn_unet_s5-d16_128x128_40k_stare/fcn_unet_s5-d16_128x128_40k_stare_20201223_191051-7d77e78b.pth"),
}


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_release_checkpoints_match_datasets_md(name):
    r = recipes.load_recipe(name, resolve=False)
    config, checkpoint = RELEASES[name]
    assert r.base_config == f"mmseg::{config}"
    assert r.load_from.url == f"https://download.openmmlab.com/mmsegmentation/v0.5/{checkpoint}"


@pytest.mark.parametrize("name", ["smoke", "quick", "longtail_synth", "longtail_synth_long"])
def test_builtin_recipes_validate(name):
    # npe:: base configs are written by the driver's owner; every other rule is checked here.
    r = recipes.load_recipe(name, resolve=False)
    assert r.base_config.startswith("npe::")
    assert r.load_from is None and r.paper_table is None


def test_smoke_recipe_shape():
    r = recipes.load_recipe("smoke", resolve=False)
    assert r.seeds == (0,) and r.max_iters is not None and r.max_iters <= 50
    assert r.expected_results() == [
        ("baseline", 0, 1.0), ("counted_la", 0, 1.0), ("counted_la", 0, 2.0), ("npe1", 0, 1.0), ("npe1", 0, 2.0),
        ("npe_main_only", 0, math.inf), ("npe_counted_la", 0, 1.0), ("npe_counted_la", 0, 2.0)]


def test_decomposition_rows_default_on_switchable_off_named_per_variant(tmp_path):
    r = recipes.load_recipe(write(tmp_path, valid_recipe()))
    assert r.decomposition and list(r.derived_rows()) == ["npe_main_only", "npe_counted_la"]
    assert r.scales_of("npe_main_only") == (math.inf,) and r.scales_of("npe_counted_la") == (1.0, 2.0)
    assert result_stem("npe_main_only", 0, math.inf) == "npe_main_only__seed0__sinf"
    data = valid_recipe()
    data["variants"].append({"name": "npe2", "num_pem": 2, "scale_factors": [1]})
    r = recipes.load_recipe(write(tmp_path, data))
    assert list(r.derived_rows()) == ["npe1_main_only", "npe1_counted_la", "npe2_main_only", "npe2_counted_la"]
    assert ("npe2_counted_la", 1.0) in r.row_keys()
    data["decomposition"] = False
    r = recipes.load_recipe(write(tmp_path, data))
    assert r.derived_rows() == {} and not any("main_only" in v for v, _ in r.row_keys())


def test_longtail_synth_auto_and_counted_la_scales():
    r = recipes.load_recipe("longtail_synth", resolve=False)
    assert r.auto_scale is not None and r.auto_scale.metric == "mIoU"
    assert r.auto_scale.candidates == (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
    npe1 = r.variant("npe1")
    assert npe1.scale_factors == (1.0, 1.5, 2.0, 3.0, "auto")
    assert r.counted_la_scales() == (1.0, 1.5, 2.0, 3.0, "auto")
    rows = r.row_keys()
    assert rows[0] == ("baseline", 1.0) and rows[1][0] == "counted_la"
    assert len(r.expected_results()) == len(rows) * 3


def test_longtail_synth_long_shape_and_dry_run_cost(tmp_path, capsys):
    from npe.run import run_recipe

    r = recipes.load_recipe("longtail_synth_long")
    short = recipes.load_recipe("longtail_synth")
    assert r.dataset == short.dataset and r.base_config == short.base_config and r.protocol == short.protocol
    assert r.seeds == (0, 1, 2, 3, 4) and r.max_iters >= 1600
    assert r.cfg_options["param_scheduler.0.end"] == r.max_iters
    assert r.variant("npe1").scale_factors == (1.0, 1.5, 2.0, 3.0, 4.0, "auto")
    assert r.counted_la_scales()[-1] == "auto" and r.scales_of("npe_counted_la")[-1] == "auto"
    assert ("npe_main_only", math.inf) in r.row_keys()
    assert run_recipe(r, dry_run=True, results_dir=tmp_path / "res", data_root=tmp_path / "data").failures == 0
    out = capsys.readouterr().out
    assert "about 33 min 20 s = 10 runs x 1600 iterations x 0.125 s" in out
    assert "100 result files (0 already done)" in out


def test_ablations_cover_the_issue():
    r = recipes.load_recipe("stare_ablations")
    v = {x.name: x for x in r.variants}
    assert {x.num_pem for x in r.variants} >= {0, 1, 2, 3, 4}
    assert any(x.pem_type == "FCNHead" for x in r.variants)
    assert any(x.freeze_backbone and not x.freeze_decode for x in r.variants)
    assert any(x.freeze_decode and not x.freeze_backbone for x in r.variants)
    assert any(x.freeze_backbone and x.freeze_decode and x.num_pem > 0 for x in r.variants)
    assert any(len(x.scale_factors) >= 5 for x in r.variants)
    assert {x.protocol for x in r.variants} == {"upstream", "fixed"}
    assert v["npe1"].train_key != v["npe1_fixed"].train_key
    # the protocol pair differs in nothing else
    a, b = v["npe1"], v["npe1_fixed"]
    assert (a.num_pem, a.pem_type, a.freeze_backbone, a.freeze_decode) == (b.num_pem, b.pem_type,
                                                                          b.freeze_backbone, b.freeze_decode)


# ---------------------------------------------------------------------------------------------- derived


def test_valid_recipe_fields_and_expected_results(tmp_path):
    data = valid_recipe()
    data["auto_scale"] = None
    data["paper"] = {"source": "test", "baseline": {"mIoU": 50}, "npe1@2": {"mDice": 60.5}}
    r = recipes.load_recipe(write(tmp_path, data))
    assert r.metrics == ("mIoU", "mDice") and r.primary_metric == "mIoU"
    assert r.tolerance == recipes.DEFAULT_TOLERANCE and r.counted_la is True
    assert r.expected_results() == [
        ("baseline", 0, 1.0), ("baseline", 1, 1.0),
        ("counted_la", 0, 1.0), ("counted_la", 1, 1.0), ("counted_la", 0, 2.0), ("counted_la", 1, 2.0),
        ("npe1", 0, 1.0), ("npe1", 1, 1.0), ("npe1", 0, 2.0), ("npe1", 1, 2.0),
        ("npe_main_only", 0, math.inf), ("npe_main_only", 1, math.inf),
        ("npe_counted_la", 0, 1.0), ("npe_counted_la", 1, 1.0),
        ("npe_counted_la", 0, 2.0), ("npe_counted_la", 1, 2.0),
    ]
    assert r.paper_value("baseline", 1.0, "mIoU") == 50.0
    assert r.paper_value("npe1", 2.0, "mDice") == 60.5
    assert r.paper_value("npe1", 1.0, "mDice") is None
    assert r.paper_source == "test"


def test_counted_la_off_and_no_baseline(tmp_path):
    data = valid_recipe()
    data["counted_la"] = False
    data["variants"] = [{"name": "npe1", "num_pem": 1}]
    r = recipes.load_recipe(write(tmp_path, data))
    assert r.baseline is None and r.counted_la_scales() == ()
    assert r.expected_results()[:2] == [("npe1", 0, 1.0), ("npe1", 1, 1.0)]
    assert {v for v, _, _ in r.expected_results()[2:]} == {"npe_main_only", "npe_counted_la"}


def test_train_key_shared_only_by_scale_factors(tmp_path):
    data = valid_recipe()
    data["variants"] += [
        {"name": "npe1_more_s", "num_pem": 1, "scale_factors": [0.5, 3]},
        {"name": "npe1_cfg", "num_pem": 1, "cfg_options": {"model.decode_head.dropout_ratio": 0.0}},
        {"name": "npe1_fixed", "num_pem": 1, "protocol": "fixed"},
        {"name": "npe1_fcn", "num_pem": 1, "pem_type": "FCNHead"},
        {"name": "npe1_fb", "num_pem": 1, "freeze_backbone": True},
        {"name": "npe2", "num_pem": 2},
    ]
    r = recipes.load_recipe(write(tmp_path, data))
    keys = {v.name: v.train_key for v in r.variants}
    assert keys["npe1"] == keys["npe1_more_s"]
    others = [keys[n] for n in ("baseline", "npe1", "npe1_cfg", "npe1_fixed", "npe1_fcn", "npe1_fb", "npe2")]
    assert len(set(others)) == len(others)
    groups = r.train_groups()
    assert [v.name for v in groups[keys["npe1"]]] == ["npe1", "npe1_more_s"]
    # stable across loads, and sensitive to recipe-level training settings
    assert recipes.load_recipe(write(tmp_path, data)).variant("npe1").train_key == keys["npe1"]
    data["max_iters"] = 100
    assert recipes.load_recipe(write(tmp_path, data)).variant("npe1").train_key != keys["npe1"]
    data["max_iters"] = None
    data["cfg_options"] = {"train_dataloader.batch_size": 2}
    assert recipes.load_recipe(write(tmp_path, data)).variant("npe1").train_key != keys["npe1"]


def test_variant_cfg_options_override_recipe_ones_in_train_key(tmp_path):
    data = valid_recipe()
    data["cfg_options"] = {"a.b": 1}
    data["variants"] += [{"name": "same", "num_pem": 1, "cfg_options": {"a.b": 1}},
                         {"name": "other", "num_pem": 1, "cfg_options": {"a.b": 2}}]
    r = recipes.load_recipe(write(tmp_path, data))
    assert r.variant("same").train_key == r.variant("npe1").train_key
    assert r.variant("other").train_key != r.variant("npe1").train_key
    assert r.merged_cfg_options("other") == {"a.b": 2}
    assert r.merged_cfg_options("npe1") == {"a.b": 1} == r.merged_cfg_options("counted_la")


def test_relative_base_config_and_npe_scope(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "m.py").write_text("_base_ = []\n")
    data = valid_recipe()
    data["base_config"] = "cfg/m.py"
    r = recipes.load_recipe(write(tmp_path, data))
    assert r.base_config_path == (tmp_path / "cfg" / "m.py").resolve()
    with pytest.raises(UserError, match="npe::definitely_absent.py"):
        recipes.resolve_base_config("npe::definitely_absent.py", tmp_path / "t.yaml")


def test_scale_label_and_result_stem():
    assert [recipes.scale_label(s) for s in (1, 1.0, 1.5, 2.0, 0.25, "auto")] == ["1", "1", "1.5", "2", "0.25",
                                                                                   "auto"]
    assert result_stem("npe1", 2, 1.5) == "npe1__seed2__s1.5"


def test_auto_scale_allowed_on_holdout_dataset(tmp_path):
    (tmp_path / "m.py").write_text("")
    data = valid_recipe()
    data.update(dataset="longtail_synth", base_config="m.py", load_from=None,
                auto_scale={"metric": "mIoU", "candidates": [1, 2]})
    data["variants"][1]["scale_factors"] = [1, "auto"]
    r = recipes.load_recipe(write(tmp_path, data))
    assert r.auto_scale == recipes.AutoScale(metric="mIoU", candidates=(1.0, 2.0))
    assert r.counted_la_scales() == (1.0, "auto")


def test_unknown_recipe_name_lists_known():
    with pytest.raises(UserError, match="unknown recipe 'no_such_recipe'.*stare_unet"):
        recipes.load_recipe("no_such_recipe")


# ---------------------------------------------------------------------------------------------- invalid


def _mutate(mutation):
    data = valid_recipe()
    mutation(data)
    return data


def _set(path, value):
    def apply(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return apply


INVALID = {
    # id: (mutation, key the message must name, words it must contain)
    "unknown_key": (_set(["colour"], "red"), "colour", "unknown key"),
    "wrong_type_seeds": (_set(["seeds"], "0, 1"), "seeds", "expected a list"),
    "wrong_type_seed": (_set(["seeds"], [0, "one"]), "seeds[1]", "integer"),
    "wrong_type_title": (_set(["title"], 3), "title", "string"),
    "unknown_dataset": (_set(["dataset"], "cityscapes"), "dataset", "unknown dataset 'cityscapes'"),
    "unresolvable_base_config": (_set(["base_config"], "mmseg::unet/no-such-config.py"), "base_config",
                                 "not found"),
    "unresolvable_relative_config": (_set(["base_config"], "configs/missing.py"), "base_config", "not found"),
    "bad_scope": (_set(["base_config"], "foo::x.py"), "base_config", "unknown scope"),
    "bad_variant_num_pem": (_set(["variants", 1, "num_pem"], "two"), "variants[1].num_pem",
                            "expected an integer >= 0, got 'two'"),
    "negative_num_pem": (_set(["variants", 1, "num_pem"], -1), "variants[1].num_pem", "integer >= 0"),
    "bool_num_pem": (_set(["variants", 1, "num_pem"], True), "variants[1].num_pem", "integer"),
    "bad_variant_pem_type": (_set(["variants", 1, "pem_type"], "ASPPHead"), "variants[1].pem_type", "one of"),
    "bad_variant_freeze": (_set(["variants", 1, "freeze_backbone"], "yes"), "variants[1].freeze_backbone",
                           "true or false"),
    "unknown_variant_key": (_set(["variants", 1, "lr"], 0.1), "variants[1].lr", "unknown key"),
    "bad_variant_protocol": (_set(["variants", 1, "protocol"], "paper"), "variants[1].protocol", "upstream"),
    "bad_scale_factor": (_set(["variants", 1, "scale_factors"], [1, 0]), "variants[1].scale_factors[1]", "> 0"),
    "bad_scale_factor_text": (_set(["variants", 1, "scale_factors"], ["big"]), "variants[1].scale_factors[0]",
                              "'auto'"),
    "auto_without_auto_scale": (_set(["variants", 1, "scale_factors"], [1, "auto"]),
                                "variants[1].scale_factors", "auto_scale"),
    "auto_scale_without_holdout": (_set(["auto_scale"], {"metric": "mIoU", "candidates": [1, 2]}),
                                   "auto_scale", "held-out"),
    "auto_scale_bad_candidate": (_set(["auto_scale"], {"metric": "mIoU", "candidates": [1, -2]}),
                                 "auto_scale.candidates[1]", "> 0"),
    "baseline_with_scale_factors": (_set(["variants", 0, "scale_factors"], [2]), "variants[0].scale_factors",
                                    "no effect"),
    "duplicate_variant": (lambda d: d["variants"].append({"name": "npe1", "num_pem": 2}), "variants[2].name",
                          "duplicate"),
    "reserved_variant_name": (_set(["variants", 1, "name"], "counted_la"), "variants[1].name", "reserved"),
    "bad_variant_name": (_set(["variants", 1, "name"], "NPE 1"), "variants[1].name", "lowercase"),
    "nothing_to_train": (lambda d: d["variants"][0].update(freeze_backbone=True, freeze_decode=True),
                         "variants[0].num_pem", "nothing to train"),
    "two_baselines": (lambda d: d["variants"].append({"name": "base2", "num_pem": 0}), "variants",
                      "exactly one baseline"),
    "no_baseline": (_set(["variants"], [{"name": "npe1", "num_pem": 1}]), "variants", "exactly one baseline"),
    "empty_variants": (_set(["variants"], []), "variants", "non-empty"),
    "missing_key": (lambda d: d.pop("protocol"), "protocol", "missing key"),
    "bad_protocol": (_set(["protocol"], "paper"), "protocol", "upstream, fixed"),
    "bad_metric": (_set(["metrics"], ["mIoU", "F1"]), "metrics[1]", "one of"),
    "name_mismatch": (_set(["name"], "other"), "name", "file name stem"),
    "bad_max_iters": (_set(["max_iters"], 0), "max_iters", ">= 1"),
    "bad_cfg_key": (_set(["cfg_options"], {"a b": 1}), "cfg_options.a b", "dotted"),
    "bad_counted_la": (_set(["counted_la"], "yes"), "counted_la", "true or false"),
    "bad_tolerance": (_set(["tolerance"], "1"), "tolerance", "number"),
    "bad_load_from_key": (_set(["load_from"], {"url": STARE_CKPT, "md5": "x"}), "load_from.md5", "unknown key"),
    "bad_sha256": (_set(["load_from"], {"url": STARE_CKPT, "sha256": "abc"}), "load_from.sha256", "64"),
    "sha256_disagrees_with_name": (_set(["load_from"], {"url": STARE_CKPT, "sha256": "0" * 64}),
                                   "load_from.sha256", "7d77e78b"),
    "paper_unknown_variant": (_set(["paper"], {"npe9": {"mIoU": None}}), "paper.npe9", "no variant"),
    "paper_ambiguous_s": (_set(["paper"], {"npe1": {"mIoU": None}}), "paper.npe1", "npe1@<s>"),
    "paper_bad_s": (_set(["paper"], {"npe1@3": {"mIoU": None}}), "paper.npe1@3", "s=3"),
    "paper_bad_metric": (_set(["paper"], {"baseline": {"aAcc": None}}), "paper.baseline.aAcc", "metrics"),
    "paper_bad_number": (_set(["paper"], {"baseline": {"mIoU": "fifty"}}), "paper.baseline.mIoU", "number"),
    "reserved_name_tables": (_set(["name"], "tables"), "name", "reserved"),
}


def _check_one_line(capsys, path: Path, key: str, words: str) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: ")
    assert str(path) in line, line
    assert f": {key}: " in line, line
    assert words in line, line
    return line


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_recipe_one_line_exit_2(case, tmp_path, capsys):
    mutation, key, words = INVALID[case]
    data = _mutate(mutation)
    name = data["name"] if case in ("reserved_name_tables",) else "t"
    path = write(tmp_path, data, name=name)
    checker = cli_entry(lambda: recipes.load_recipe(path))
    with pytest.raises(SystemExit) as exc:
        checker()
    assert exc.value.code == 2
    _check_one_line(capsys, path, key, words)


@pytest.mark.parametrize("case", ["unknown_key", "wrong_type_seeds", "unknown_dataset", "bad_variant_num_pem",
                                  "duplicate_variant", "nothing_to_train"])
def test_invalid_recipe_through_npe_tables(case, tmp_path, capsys):
    mutation, key, words = INVALID[case]
    path = write(tmp_path, _mutate(mutation))
    out = tmp_path / "tables"
    (tmp_path / "results").mkdir()   # an existing results folder: the recipe is what is wrong
    with pytest.raises(SystemExit) as exc:
        tables_cli.main(["--results-dir", str(tmp_path / "results"), "--out-dir", str(out), "--recipe", str(path)])
    assert exc.value.code == 2
    _check_one_line(capsys, path, key, words)
    assert not out.exists()  # nothing started


def test_invalid_recipe_through_module_cli(tmp_path, capsys):
    path = write(tmp_path, _mutate(INVALID["unresolvable_base_config"][0]))
    with pytest.raises(SystemExit) as exc:
        recipes_cli.main([str(path)])
    assert exc.value.code == 2
    _check_one_line(capsys, path, "base_config", "not found")


def test_invalid_yaml_one_line(tmp_path, capsys):
    path = write(tmp_path, "name: t\nvariants: [\n  - {name: a\n")
    with pytest.raises(SystemExit) as exc:
        cli_entry(lambda: recipes.load_recipe(path))()
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(path) in err[0] and "invalid YAML at line" in err[0]


def test_top_level_not_a_mapping(tmp_path):
    path = write(tmp_path, "- just\n- a list\n")
    with pytest.raises(UserError, match="top level"):
        recipes.load_recipe(path)


def test_resolve_false_still_checks_everything_else(tmp_path):
    data = valid_recipe()
    data["base_config"] = "mmseg::unet/no-such-config.py"
    r = recipes.load_recipe(write(tmp_path, data), resolve=False)
    assert r.base_config_path is None
    bad = copy.deepcopy(data)
    bad["variants"][1]["num_pem"] = "two"
    with pytest.raises(UserError, match=r"variants\[1\]\.num_pem"):
        recipes.load_recipe(write(tmp_path, bad), resolve=False)


def test_duplicate_yaml_key_is_an_error(tmp_path, capsys):
    text = yaml.safe_dump(valid_recipe(), sort_keys=False) + "seeds: [5]\n"
    path = write(tmp_path, text)
    with pytest.raises(SystemExit) as exc:
        cli_entry(lambda: recipes.load_recipe(path))()
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(path) in err[0] and "'seeds' given twice" in err[0]
