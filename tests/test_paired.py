"""Paired comparisons over seeds: hand-computed cases, scipy's own paired test, the pairs a recipe's
summary makes, and the committed tables carrying them."""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from test_tables import dump, make_result, write_recipe

from npe import paired, stats, tables
from npe import results as result_files

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "results" / "tables"
# two-sided 95% t critical values from any printed t table (df = 1, 2, 5, 6)
T95 = {1: 12.7062047362, 2: 4.3026527297, 5: 2.5705818366, 6: 2.4469118511}


def test_no_common_seed():
    p = paired.paired_difference({0: 1.0}, {1: 2.0})
    assert p.n == 0 and p.mean is None and p.low is None and p.needed is None
    assert p.verdict == "no seeds in common"


def test_one_seed_has_a_difference_but_no_interval():
    p = paired.paired_difference({3: 72.13}, {3: 70.0})
    assert p.seeds == (3,) and p.diffs == (2.13,) and p.mean == pytest.approx(2.13)
    assert p.sd is None and p.low is None and p.high is None and p.needed is None
    assert p.verdict == "not separated at 1 seed"


def test_two_seeds_by_hand():
    # differences 2 and 3: mean 2.5, sd sqrt(0.5), half-width t(1) * sd / sqrt(2) = t(1) / 2
    p = paired.paired_difference({0: 3.0, 1: 5.0}, {0: 1.0, 1: 2.0})
    assert p.diffs == (2.0, 3.0) and p.mean == 2.5 and p.sd == pytest.approx(math.sqrt(0.5))
    assert p.low == pytest.approx(2.5 - T95[1] / 2) and p.high == pytest.approx(2.5 + T95[1] / 2)
    assert p.verdict == "not separated at 2 seeds"
    # 3 seeds: t(2) * sqrt(0.5) / sqrt(3) = 1.757 < 2.5 (2 seeds: 6.35 is not)
    assert p.needed == 3


def test_missing_seed_on_one_side_pairs_the_common_ones():
    a = {0: 50.0, 1: 60.0, 2: 55.0, 3: None}
    b = {0: 49.0, 2: 52.0, 3: 40.0, 4: 10.0}   # no seed 1; seed 3 has no value in a; seed 4 not in a
    p = paired.paired_difference(a, b)
    assert p.seeds == (0, 2) and p.diffs == (1.0, 3.0) and p.mean == 2.0
    nan = paired.paired_difference({0: float("nan"), 1: 2.0}, {0: 1.0, 1: 1.0})
    assert nan.seeds == (1,)


def test_ties():
    # every difference 0: equal, an interval of width 0, nothing to separate
    same = paired.paired_difference({0: 71.91, 1: 70.5, 2: 72.0}, {0: 71.91, 1: 70.5, 2: 72.0})
    assert same.diffs == (0.0, 0.0, 0.0) and same.low == same.high == 0.0
    assert same.verdict == "equal at 3 seeds" and same.needed is None
    # the same non-zero difference in every seed (float noise rounded away): width 0, better
    const = paired.paired_difference({0: 71.91, 1: 70.52, 2: 72.13}, {0: 71.49, 1: 70.10, 2: 71.71})
    assert const.diffs == (0.42, 0.42, 0.42) and const.sd == 0.0 and const.low == const.high == 0.42
    assert const.verdict == "better" and const.needed == 2
    # some seeds tied, others not: the ties count as differences of 0
    mixed = paired.paired_difference({0: 5.0, 1: 5.0, 2: 8.0}, {0: 5.0, 1: 5.0, 2: 5.0})
    assert mixed.diffs == (0.0, 0.0, 3.0) and mixed.mean == 1.0
    assert mixed.low == pytest.approx(1.0 - T95[2] * math.sqrt(3.0) / math.sqrt(3.0))
    assert mixed.verdict == "not separated at 3 seeds"


def test_worse_when_the_interval_is_below_zero():
    p = paired.paired_difference({0: 1.0, 1: 2.0, 2: 1.5}, {0: 5.0, 1: 6.5, 2: 5.5})
    assert p.high < 0 and p.verdict == "worse"


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_interval_equals_scipys_paired_t_test(confidence):
    rng = np.random.default_rng(11)
    for n in (2, 3, 5, 8):
        a, b = rng.normal(70, 6, n).round(2), rng.normal(68, 6, n).round(2)
        p = paired.paired_difference(dict(enumerate(a)), dict(enumerate(b)), confidence)
        ci = sps.ttest_rel(a, b).confidence_interval(confidence)
        assert p.low == pytest.approx(ci.low, abs=1e-5) and p.high == pytest.approx(ci.high, abs=1e-5)
        assert p.mean == pytest.approx(np.mean(a - b), abs=1e-6)
        # the verdict agrees with scipy's two-sided p-value at the same level
        separated = p.verdict in ("better", "worse")
        assert separated == (sps.ttest_rel(a, b).pvalue < 1 - confidence)


def test_seeds_needed_by_hand():
    # mean 1, sd 1: t(5) / sqrt(6) = 1.049 is not below 1, t(6) / sqrt(7) = 0.925 is
    assert T95[5] / math.sqrt(6) > 1 > T95[6] / math.sqrt(7)
    assert paired.seeds_needed(1.0, 1.0) == 7
    assert paired.seeds_needed(-1.0, 1.0) == 7      # the sign does not matter
    assert paired.seeds_needed(0.0, 1.0) is None    # no difference to separate
    assert paired.seeds_needed(1.0, None) is None   # no spread observed (one seed)
    assert paired.seeds_needed(1e-3, 10.0, limit=50) == 51


def test_seeds_needed_agrees_with_the_verdict():
    rng = np.random.default_rng(5)
    for _ in range(40):
        n = int(rng.integers(2, 7))
        a, b = rng.normal(0, 3, n).round(2), rng.normal(1, 3, n).round(2)
        p = paired.paired_difference(dict(enumerate(a)), dict(enumerate(b)))
        if p.needed is None:
            continue
        assert (p.needed <= n) == (p.verdict in ("better", "worse")), (a, b)


def test_summary_pairs_the_recipes_questions(tmp_path):
    recipe = write_recipe(tmp_path, decomposition=True)
    results = tmp_path / "results"
    value = {"baseline": 50.0, "counted_la": 52.0, "npe1": 53.0, "npe_main_only": 49.0, "npe_counted_la": 52.5}
    for variant, seed, s in recipe.expected_results():
        if (variant, seed) == ("counted_la", 2):
            continue   # a missing seed on one side: that pair has n = 2
        miou = value[variant] + seed * 0.5 + (0.1 * seed if variant == "npe1" else 0.0)
        dump(results, recipe, make_result(recipe, variant, seed, s, [50.0] * 7, miou, 60.0, chosen=2.0))
    summary = stats.summarize(recipe, result_files.read_results(results, recipe.name))
    found = {(c.question, c.a, c.b): c for c in summary.comparisons}
    assert (stats.VS_BASELINE, ("npe1", "auto"), ("baseline", "1")) in found
    assert (stats.VS_COUNTED, ("npe1", "2"), ("counted_la", "2")) in found
    assert (stats.VS_SAME_MODEL, ("npe1", "auto"), ("npe_counted_la", "auto")) in found
    assert (stats.VS_MAIN_ONLY, ("npe1", "1"), ("npe_main_only", "inf")) in found
    assert not any(c.b[0] == "baseline" and c.a[0] == "baseline" for c in summary.comparisons)
    vs_counted = found[(stats.VS_COUNTED, ("npe1", "1"), ("counted_la", "1"))].paired["mIoU"]
    assert vs_counted.seeds == (0, 1) and vs_counted.diffs == (1.0, 1.1)
    prior_adds = found[(stats.VS_MAIN_ONLY, ("npe1", "2"), ("npe_main_only", "inf"))].paired["mIoU"]
    assert prior_adds.diffs == (4.0, 4.1, 4.2) and prior_adds.verdict == "better"
    questions = [c.question for c in summary.comparisons]
    assert questions == sorted(questions, key=[stats.VS_BASELINE, stats.VS_COUNTED, stats.VS_SAME_MODEL,
                                               stats.VS_MAIN_ONLY].index)
    md = tables.render_markdown(summary)
    assert "## Paired comparisons (mIoU)" in md and "seeds to separate" in md
    rows = list(csv.DictReader(io.StringIO(tables.render_paired_csv(summary))))
    assert len(rows) == len(summary.comparisons) * len(recipe.metrics)
    row = next(r for r in rows if r["a_variant"] == "npe1" and r["a_s"] == "1" and r["b_variant"] == "counted_la"
               and r["metric"] == "mIoU")
    assert row["seeds"] == "0 1" and row["diffs"] == "1.0000 1.1000" and row["mean"] == "1.0500"
    assert "\\toprule" in tables.render_paired_latex(summary)


def _paired_table(recipe: str) -> dict[tuple[str, str, str], list[str]]:
    """The committed Markdown's paired rows: (question, A, B) -> [n, per seed, mean, CI, verdict, needed]."""
    text = (TABLES / f"{recipe}.md").read_text()
    part = text.split("## Paired comparisons (mIoU)", 1)[1].split("\n\n", 2)[1]
    out = {}
    for line in part.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[tuple(cells[:3])] = cells[3:]
    return out


@pytest.mark.parametrize("recipe, n", [("longtail_synth", 3), ("longtail_synth_long", 5)])
def test_committed_tables_carry_the_paired_rows(recipe, n):
    rows = _paired_table(recipe)
    for question, a, b in [(stats.VS_BASELINE, "npe1, s=auto", "baseline"),
                           (stats.VS_COUNTED, "npe1, s=auto", "counted_la, s=auto"),
                           (stats.VS_SAME_MODEL, "npe1, s=auto", "npe_counted_la, s=auto"),
                           (stats.VS_MAIN_ONLY, "npe1, s=auto", "npe_main_only, s=inf")]:
        cells = rows[(question, a, b)]
        assert cells[0] == str(n) and len(cells[1].split()) == n
    assert (TABLES / f"{recipe}_paired.csv").is_file() and (TABLES / f"{recipe}_paired.tex").is_file()


#: The pages whose ``<!-- checked: RECIPE -->`` blocks state numbers from the committed tables.
CHECKED_PAGES = ("README.md", "docs/results.md")


def _readme_blocks(page: str | None = None) -> list[tuple[str, str]]:
    """``(recipe, text)`` of every checked block of one page, or of all of :data:`CHECKED_PAGES`."""
    blocks = []
    for name in ([page] if page else CHECKED_PAGES):
        text = (ROOT / name).read_text()
        blocks += re.findall(r"<!-- checked: (\w+) .*?-->(.*?)<!-- /checked -->", text, flags=re.S)
    return blocks


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", text))


def test_every_number_the_readme_states_about_the_results_is_in_the_committed_tables():
    results_page = _readme_blocks("docs/results.md")
    assert {name for name, _ in results_page} == {"longtail_synth", "longtail_synth_long"} and len(results_page) >= 5
    assert _readme_blocks("README.md"), "the README's results summary is not in a checked block"
    blocks = _readme_blocks()
    for name, block in blocks:
        table = (TABLES / f"{name}.md").read_text()
        missing = _numbers(block) - _numbers(table)
        assert not missing, (name, sorted(missing))
        for pm in re.findall(r"\d+\.\d+ ± \d+\.\d+", block):   # mean ± std as the main table prints it
            assert pm in table, (name, pm)
        rows = _paired_table(name).values()
        for mean, low, high in re.findall(r"([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\]", block):
            assert any(c[2:4] == [mean, f"[{low}, {high}]"] for c in rows), (name, mean, low, high)


@pytest.mark.parametrize("recipe, question, a, b, verdict, needed", [
    # the README's "separated" statements
    ("longtail_synth", stats.VS_BASELINE, "counted_la, s=auto", "baseline", "better", None),
    ("longtail_synth", stats.VS_MAIN_ONLY, "npe1, s=1", "npe_main_only, s=inf", "better", None),
    ("longtail_synth_long", stats.VS_BASELINE, "counted_la, s=auto", "baseline", "better", None),
    ("longtail_synth_long", stats.VS_MAIN_ONLY, "npe1, s=auto", "npe_main_only, s=inf", "better", None),
    ("longtail_synth_long", stats.VS_MAIN_ONLY, "npe1, s=3", "npe_main_only, s=inf", "better", None),
    ("longtail_synth_long", stats.VS_COUNTED, "npe1, s=1", "counted_la, s=1", "worse", None),
    # and its "not separated" ones, with the seeds it says separating would take
    ("longtail_synth", stats.VS_BASELINE, "npe1, s=auto", "baseline", "not separated at 3 seeds", "111"),
    ("longtail_synth", stats.VS_COUNTED, "npe1, s=auto", "counted_la, s=auto", "not separated at 3 seeds", "12"),
    ("longtail_synth", stats.VS_SAME_MODEL, "npe1, s=auto", "npe_counted_la, s=auto", "not separated at 3 seeds",
     None),
    ("longtail_synth", stats.VS_MAIN_ONLY, "npe1, s=auto", "npe_main_only, s=inf", "not separated at 3 seeds",
     None),
    ("longtail_synth", stats.VS_BASELINE, "npe_main_only, s=inf", "baseline", "not separated at 3 seeds",
     None),
    ("longtail_synth_long", stats.VS_BASELINE, "npe1, s=auto", "baseline", "not separated at 5 seeds", "24"),
    ("longtail_synth_long", stats.VS_COUNTED, "npe1, s=auto", "counted_la, s=auto", "not separated at 5 seeds",
     "20"),
    ("longtail_synth_long", stats.VS_SAME_MODEL, "npe1, s=auto", "npe_counted_la, s=auto",
     "not separated at 5 seeds", "44"),
    ("longtail_synth_long", stats.VS_BASELINE, "npe_main_only, s=inf", "baseline",
     "not separated at 5 seeds", None),
])
def test_readme_verdicts_match_the_committed_tables(recipe, question, a, b, verdict, needed):
    cells = _paired_table(recipe)[(question, a, b)]
    assert cells[4] == verdict
    if needed is not None:
        assert cells[5] == needed


@pytest.mark.parametrize("recipe, s_better, s_not", [("longtail_synth", ["1", "1.5", "2", "3", "auto"], []),
                                                     ("longtail_synth_long", ["1", "1.5", "2", "auto"], ["3", "4"])])
def test_readme_counted_la_against_the_baseline_at_every_s(recipe, s_better, s_not):
    rows = _paired_table(recipe)
    for s in s_better + s_not:
        verdict = rows[(stats.VS_BASELINE, f"counted_la, s={s}", "baseline")][4]
        assert (verdict == "better") == (s in s_better), (s, verdict)
    if recipe == "longtail_synth_long":   # NPE-LA below counted LA in the mean at every s, separated only at s = 1
        counted = [cells for (q, a, _), cells in rows.items() if q == stats.VS_COUNTED]
        assert len(counted) == 6 and all(c[2].startswith("-") for c in counted)
        assert [c[4] for c in counted].count("worse") == 1
        assert rows[(stats.VS_COUNTED, "npe1, s=auto", "counted_la, s=auto")][1].split()[1] == "-20.43"
