"""The lecture notebooks' form (issues "Lectures I" and "Lectures II"): each is
``lectures/NN-topic.ipynb``, explains at least as much as it computes (markdown lines >= code lines),
draws at least one figure, ends with a Summary and an Exercises section, starts from the course's
seeded set-up cell, states its time budget, keeps no outputs, is listed in ``lectures/README.md``,
and defines none of the functions or classes a homework asks students to write.

That every lecture runs top to bottom is checked by nbval (``bash course.sh test`` executes
``lectures/`` in quick mode); ``benchmarks/lecture_times.py`` prints the full- and quick-mode times."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
NAME = re.compile(r"^(\d\d)-[a-z0-9]+(?:-[a-z0-9]+)*\.ipynb$")
FIGURE = re.compile(r"\bplt\.(?:subplots|figure|imshow|plot|show)\b|\bgc\.plotting\.\w+\(")
BUDGETS = (180, 300)  # seconds on 2 cores, full mode: 3 minutes, or 5 for a lecture that trains something visible


def _cells(nb, kind: str) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == kind]


def _lines(sources: list[str]) -> int:
    return sum(1 for s in sources for line in s.splitlines() if line.strip())


def _headings(nb) -> list[str]:
    return [line.lstrip("#").strip() for s in _cells(nb, "markdown") for line in s.splitlines()
            if re.match(r"^#{1,3} ", line)]


@functools.cache
def graded_names() -> frozenset[str]:
    """Every function or class that a released homework leaves for students to write (its stubs raise
    NotImplementedError)."""
    names = set()
    for path in sorted((ROOT / "homework").glob("hw*/hw*.ipynb")):
        for source in _cells(nbformat.read(path, as_version=4), "code"):
            if "NotImplementedError" in source:
                names |= set(re.findall(r"^(?:def|class) (\w+)", source, re.M))
    return frozenset(names)


def test_graded_names_are_read_from_every_homework():
    names = graded_names()
    assert {"accuracy", "banded_attention", "repaint", "LoRALinear", "clip_loss"} <= names, names


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_form(path):
    assert NAME.match(path.name), f"{path.name}: name lectures NN-topic.ipynb (two digits, lower-case words)"
    nb = nbformat.read(path, as_version=4)
    problems = []
    md, code = _cells(nb, "markdown"), _cells(nb, "code")
    if _lines(md) < _lines(code):
        problems.append(f"markdown:code is {_lines(md)}:{_lines(code)} lines; explain at least as much as you compute")
    if not any(FIGURE.search(s) for s in code):
        problems.append("no figure (matplotlib or gc.plotting)")
    heads = _headings(nb)
    if heads[-2:] != ["Summary", "Exercises"]:
        problems.append(f"the last two sections must be 'Summary' and 'Exercises', got {heads[-2:]}")
    if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.startswith("# "):
        problems.append("the first cell must be a markdown title ('# ...')")
    first_code = code[0] if code else ""
    for needed in ("import genai_course as gc", "gc.seed_everything(", "gc.quick_mode()"):
        if needed not in first_code:
            problems.append(f"the first code cell must hold the set-up ({needed!r} is missing)")
    meta = nb.metadata.get("genai_course", {})
    if meta.get("lecture") != int(path.name[:2]):
        problems.append(f"metadata genai_course.lecture must be {int(path.name[:2])}, got {meta.get('lecture')}")
    if meta.get("budget_s") not in BUDGETS:
        problems.append(f"metadata genai_course.budget_s must be one of {BUDGETS}, got {meta.get('budget_s')}")
    stored = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    if stored:
        problems.append(f"cells {stored} keep outputs; clear them (the repository stays lean, CI executes them)")
    defined = {n for s in code for n in re.findall(r"^(?:def|class) (\w+)", s, re.M)}
    if defined & graded_names():
        problems.append(f"defines {sorted(defined & graded_names())}, which a homework asks students to write")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_lectures_are_numbered_once_and_listed_in_the_readme():
    numbers = [p.name[:2] for p in LECTURES]
    assert len(numbers) == len(set(numbers)), numbers
    readme = (ROOT / "lectures" / "README.md").read_text()
    missing = [p.name for p in LECTURES if f"({p.name})" not in readme]
    assert not missing, f"lectures/README.md does not link {missing}"
