"""The repository stands alone: nothing in it points outside it (to the old sibling spec folder),
every citation of a docs page ("docs/method.md section 5 row 4") names a page, section and row that
exist, the facts docs/datasets.md and docs/method.md state are the ones the code uses, and the README is
a guide: short, its links resolve, and each of its commands is run by a test (tests/README.md says which)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Files that may still name the old spec folder: the changelog (history). Recipes with committed
#: result files are allowed by rule, see ``_frozen_recipes``.
ALLOWED = {"CHANGELOG.md"}

#: Folders that are never part of the repository's content, for the walk used where git is missing.
_SKIP_DIRS = {".git", ".venv", "build", "dist", "work_dirs", ".cache", "__pycache__", ".pytest_cache",
              ".hypothesis", "node_modules"}

#: The sibling folder the specs and the fidelity set used to be read from (written so that this file
#: does not match itself).
OUTSIDE = re.compile(r"\.\./shared|shared/(?:spec|fidelity)")
#: The old spec files' names used as citations without a folder (NPE, DATASETS, ENVIRONMENT, KIT).
SPEC_NAMES = re.compile(r"(?<![\w/.-])(?:NPE|DATASETS|ENVIRONMENT|KIT)\.md\b")

_NUMS = r"\d+(?:\s*(?:-|–|,|and)\s*\d+)*"
_GAP = r"[\s#*/\"']*"  # a citation may wrap onto the next comment line
#: ``docs/<page>.md section N`` (or ``sections N and M``, ``N-M``), optionally ``row(s) N``.
CITATION = re.compile(rf"docs/([\w-]+)\.md,?{_GAP}sections?{_GAP}({_NUMS})(?:,?{_GAP}rows?{_GAP}({_NUMS}))?")
#: Inside docs/: ``[page.md](page.md) section N`` or ``page.md, section "Name"``.
LOCAL_CITATION = re.compile(rf"(?<![\w/])(?:\[[\w-]+\.md\]\()?([\w-]+)\.md\)?,?{_GAP}sections?"
                            rf"{_GAP}({_NUMS}|\"[^\"\n]+\")")


def _repository_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files (what a commit would hold), else a filtered walk."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
        if names:
            return [ROOT / n for n in names if (ROOT / n).is_file()]
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        rel = Path(folder).relative_to(ROOT)
        if rel.parts[:2] == ("segmentation", "data"):
            names = [n for n in names if n == "README.md"]
        files += [Path(folder) / n for n in names]
    return files


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary (figures, archives)


def _frozen_recipes() -> set[str]:
    """Recipes whose committed result files record their exact bytes (``recipe.sha256``): editing
    one, even a comment, would mark its committed tables as made by another version of it."""
    frozen = set()
    for recipe in (ROOT / "recipes").glob("*.yaml"):
        digest = hashlib.sha256(recipe.read_bytes()).hexdigest()
        for result in (ROOT / "results" / recipe.stem).glob("*.json"):
            try:
                recorded = json.loads(result.read_text())["recipe"]["sha256"]
            except (ValueError, KeyError, TypeError):
                continue
            if recorded == digest:
                frozen.add(f"recipes/{recipe.name}")
                break
    return frozen


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _sections(page: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``({number: heading}, {heading text: heading})`` of a docs page's ``##`` headings."""
    numbered, named = {}, {}
    for line in page.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#{2,4}\s+(?:(\d+)\.\s+)?(.+?)\s*$", line)
        if match:
            if match.group(1):
                numbered[match.group(1)] = line
            named[match.group(2)] = line
    return numbered, named


def _numbers(text: str) -> list[int]:
    """``'4-5'`` -> [4, 5]; ``'1 and 3'`` / ``'1, 4'`` -> [1, 3] / [1, 4]."""
    out: list[int] = []
    for part in re.split(r"\s*(?:,|and)\s*", text):
        bounds = [int(n) for n in re.split(r"\s*[-–]\s*", part)]
        out += list(range(bounds[0], bounds[-1] + 1))
    return out


def _table_rows(page: Path, section: str) -> set[int]:
    """First-column numbers of the Markdown table(s) in one numbered section of a page."""
    rows, inside = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^##\s+(?:(\d+)\.)?", line)
        if heading:
            inside = heading.group(1) == section
        elif inside:
            cell = re.match(r"^\|\s*(\d+)\s*\|", line)
            if cell:
                rows.add(int(cell.group(1)))
    return rows


def _citations() -> list[tuple[str, int, str, str, str, str | None]]:
    """Every docs citation in the repository: (file, line, citation, page, sections, rows)."""
    found = []
    for path in _repository_files():
        text = _text(path)
        if text is None or "section" not in text:
            continue
        patterns = [CITATION] + ([LOCAL_CITATION] if path.parent == DOCS else [])
        for pattern in patterns:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                rows = match.group(3) if pattern is CITATION else None
                found.append((_rel(path), line, " ".join(match.group(0).split()), match.group(1),
                              match.group(2), rows))
    return found


def test_no_file_points_outside_the_repository():
    allowed = ALLOWED | _frozen_recipes()
    bad = []
    for path in _repository_files():
        rel = _rel(path)
        text = _text(path)
        if text is None or rel in allowed:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) or SPEC_NAMES.search(line):
                bad.append(f"{rel}:{number}: {line.strip()}")
    assert not bad, ("these lines point outside the repository (or to the old spec files by name); "
                     "cite docs/method.md, docs/datasets.md or docs/environment.md instead:\n"
                     + "\n".join(bad))


def test_the_frozen_recipes_are_the_committed_ones():
    # the exception above is no loophole: only recipes whose committed results record their bytes
    assert _frozen_recipes() <= {f"recipes/{p.name}" for p in (ROOT / "recipes").glob("*.yaml")
                                 if (ROOT / "results" / p.stem).is_dir()}


def test_every_docs_citation_names_an_existing_page_section_and_row():
    citations = _citations()
    # the regexes must find the citations the code is known to carry, or this test checks nothing
    files = {c[0] for c in citations}
    assert {"npe/models/loss.py", "npe/hooks.py", "npe/evaluation.py", "tests/cli/test_train_cli.py",
            "recipes/stare_unet.yaml"} <= files, files
    assert any(c[5] for c in citations), "no 'row N' citation found"
    bad = []
    for rel, line, cited, page_name, sections, rows in citations:
        page = DOCS / f"{page_name}.md"
        where = f"{rel}:{line}: {cited!r}"
        if not page.is_file():
            bad.append(f"{where}: no page docs/{page_name}.md")
            continue
        numbered, named = _sections(page)
        if sections.startswith('"'):
            name = sections.strip('"')
            if not any(h == name or h.startswith(f"{name} (") for h in named):
                bad.append(f"{where}: docs/{page_name}.md has no section {sections}")
            continue
        missing = [n for n in _numbers(sections) if str(n) not in numbered]
        if missing:
            bad.append(f"{where}: docs/{page_name}.md has no section {missing}")
            continue
        if rows:
            table = _table_rows(page, str(_numbers(sections)[0]))
            absent = [n for n in _numbers(rows) if n not in table]
            if absent:
                bad.append(f"{where}: section {sections} of docs/{page_name}.md has no row {absent}")
    assert not bad, "citations that do not resolve:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", ["method", "datasets", "environment", "internals", "fidelity"])
def test_docs_links_between_pages_resolve(page):
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (DOCS / t).exists()]
    assert not missing, f"docs/{page}.md links to missing files: {missing}"


def test_method_sections_and_departures_table_keep_their_numbers():
    numbered, _ = _sections(DOCS / "method.md")
    assert sorted(int(n) for n in numbered) == list(range(1, 8))
    assert _table_rows(DOCS / "method.md", "5") == set(range(1, 11))


def test_method_schedules_and_batch_are_the_codes():
    from npe import config

    text = (DOCS / "method.md").read_text(encoding="utf-8")
    assert f"forced to {config.BATCH_SIZE}" in text
    for dataset, (max_iters, val_interval, milestones) in config.SCHEDULES.items():
        row = next(line for line in text.splitlines() if line.startswith(f"  | {dataset} |"))
        assert f"| {max_iters} | {val_interval} |" in row and f"milestones {milestones}" in row


def test_datasets_page_states_the_codes_sources_and_checksums():
    from npe.datasets import ade20k, stare

    text = " ".join((DOCS / "datasets.md").read_text(encoding="utf-8").split())
    for source in stare.SOURCES:
        algo, digest = source.checksum.split(":", 1)
        assert algo == "sha256" and f"| `{source.url}` | `{digest}` |" in text, source
    (zip_source,) = ade20k.SOURCES
    algo, digest = zip_source.checksum.split(":", 1)
    assert f"`{zip_source.url}`" in text and f"{algo} `{digest}`" in text
    train, val = ade20k.DEFAULT_COUNTS
    assert f"{train:,} training and {val:,} validation" in text


def test_datasets_page_lists_exactly_the_known_checkpoints():
    from npe.datasets import checkpoints

    text = (DOCS / "datasets.md").read_text(encoding="utf-8")
    assert f"`{checkpoints.OPENMMLAB_PREFIX}`" in text
    table = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].endswith(".py") and cells[1].endswith(".pth"):
            table[cells[0]] = cells[1]
    assert table == checkpoints.KNOWN


# ------------------------------------------------------------------ the README as a guide (issue 21)
README = ROOT / "README.md"
#: The pages a reader follows links through: the README, the changelog and every docs page.
LINKED_PAGES = [README, ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation but ``-`` dropped, spaces to ``-``."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


def test_readme_is_a_short_guide():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail into docs/"
    for page in ("user-guide", "results", "tables", "benchmarks", "fidelity", "method", "internals"):
        assert f"](docs/{page}.md" in README.read_text(encoding="utf-8"), f"README does not link docs/{page}.md"


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda p: _rel(p))
def test_every_relative_link_points_to_an_existing_file_and_heading(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            bad.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            bad.append(f"{target}: {_rel(file)} has no heading with anchor #{anchor}")
    assert not bad, f"{_rel(page)} links that do not resolve:\n" + "\n".join(bad)


def _readme_commands() -> list[str]:
    """Each command line of the README's ```bash blocks, without its trailing comment."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                commands.append(command)
    return commands


def test_every_readme_command_is_listed_with_the_test_that_runs_it():
    commands = _readme_commands()
    assert "scripts/repro.sh" in commands and "scripts/test.sh" in commands, commands
    listed = dict(re.findall(r"^\| `([^`]+)` \| (.+?) \|$", (ROOT / "tests" / "README.md").read_text(), re.M))
    missing = [c for c in commands if c not in listed]
    assert not missing, f"README commands missing from tests/README.md's table: {missing}"
    stale = [c for c in listed if c not in commands and not c.endswith(".py")]
    assert not stale, f"tests/README.md lists commands the README no longer has: {stale}"
    # every test the table names exists
    for command, where in listed.items():
        for file, test in re.findall(r"`(\w+\.py)::(\w+)`", where):
            source = (ROOT / "tests" / file).read_text()
            assert re.search(rf"def {test}\b", source), f"{command}: tests/{file} has no {test}"


def test_npe_repro_list_names_every_recipe():
    """`npe-repro --list`, as the README shows it."""
    import sys

    proc = subprocess.run([str(Path(sys.executable).parent / "npe-repro"), "--list"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert names == {p.stem for p in (ROOT / "recipes").glob("*.yaml")}, proc.stdout
