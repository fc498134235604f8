"""Batch grading: one row per submission, parallel workers, resumable after being killed."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from genai_course.grading.batch import grade_many, unique_stems

from .conftest import TOY

CORRECT = (TOY / "correct.py").read_text()
WRONG = CORRECT.replace("return a + b", "return a - b")


def _make_submissions(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"student{i:02d}.py"
        p.write_text(CORRECT if i % 3 else WRONG)
        paths.append(p)
    return paths


def _rows(out: Path) -> list[dict]:
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_twenty_submissions_two_workers(tmp_path, toy_suite):
    subs = _make_submissions(tmp_path / "subs", 20)
    subs.append(tmp_path / "subs" / "missing.ipynb")  # unreadable: its own row, nothing else affected
    rows = grade_many(toy_suite, subs, tmp_path / "out", workers=2)
    assert len(rows) == 21 and len(_rows(tmp_path / "out")) == 21
    by_stem = {r["stem"]: r for r in rows}
    for i in range(20):  # every third submission gets add() wrong on all 3 cases: 6 - 2 points
        assert by_stem[f"student{i:02d}"]["score"] == (6 if i % 3 else 4), by_stem[f"student{i:02d}"]
    assert by_stem["missing"]["status"] == "invalid" and by_stem["missing"]["score"] == 0
    results = json.loads((tmp_path / "out" / "student01" / "results.json").read_text())
    assert {"score", "execution_time", "output", "tests"} <= set(results)
    assert all({"name", "score", "max_score", "output", "visibility"} <= set(t) for t in results["tests"])


def test_killed_run_resumes_without_regrading(tmp_path):
    subs = _make_submissions(tmp_path / "subs", 20)
    out = tmp_path / "out"
    env = {**os.environ, "GENAI_COURSE_ROOT": str(tmp_path / "course")}
    course = tmp_path / "course" / "autograder" / "toy"
    course.mkdir(parents=True)
    (course / "test_toy.py").write_text((TOY / "suite_toy.py").read_text())
    (course / "probes.py").write_text((TOY / "probes.py").read_text())
    cmd = [sys.executable, "-m", "genai_course.cli", "grade", "--assignment", "toy", "--out", str(out),
           "--workers", "1", *map(str, subs)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*/results.json"))) < 5:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert 5 <= len(done_before) < 20, "the run should have been killed half way"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert len(after) == 20 and len(_rows(out)) == 20
    assert all(after[s] == m for s, m in done_before.items()), "already graded submissions were regraded"
    assert not list(out.glob("*/*.tmp*")), "no half-written files are left behind"


def test_unique_stems():
    stems = unique_stems([Path("a/hw0.ipynb"), Path("b/hw0.ipynb"), Path("c/hw0.py")])
    assert sorted(stems.values()) == ["b_hw0", "c_hw0", "hw0"]


def _notebook(source: str, metadata) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "source": source, "metadata": metadata, "outputs": [],
                                  "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_any_file_name_and_any_file_gives_a_row_and_nothing_escapes_out(tmp_path, toy_suite):
    """Symlinks (to the solution, to /dev/zero), a FIFO, a sparse 10 GB file, a stem '..', names with
    newlines, undecodable bytes or a leading '=', and a notebook whose cell metadata is
    {"nbgrader": null}: every one ends as its own row -- graded or a clear error -- and nothing is
    written outside --out."""
    from genai_course.grading.runner import course_root

    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "to_solution.ipynb").symlink_to(course_root() / "solutions" / "hw0" / "hw0.ipynb")
    (subs / "zero.ipynb").symlink_to("/dev/zero")
    os.mkfifo(subs / "fifo.ipynb")
    with open(subs / "huge.ipynb", "wb") as f:
        f.truncate(10 * 2**30)
    (subs / "...ipynb").write_text(_notebook(CORRECT, {}))  # its stem is '..'
    (subs / "new\nline.py").write_text(CORRECT)
    (subs / os.fsdecode(b"bad\xffname.py")).write_text(CORRECT)
    (subs / "=HYPERLINK(1).py").write_text(CORRECT)
    (subs / "meta.ipynb").write_text(_notebook(CORRECT, {"nbgrader": None}))
    paths = sorted(subs.iterdir())
    out = tmp_path / "deep" / "out"
    before = set(tmp_path.rglob("*"))
    start = time.monotonic()
    rows = grade_many(toy_suite, paths, out, workers=2)
    assert time.monotonic() - start < 240
    assert len(rows) == len(paths), "every submission gets its own row"
    by_sub = {Path(r["submission"]).name: r for r in rows}
    for name in ("to_solution.ipynb", "zero.ipynb"):
        r = json.loads((out / Path(name).stem / "results.json").read_text())
        assert r["status"] == "invalid" and "symbolic link" in r["output"], r["output"]
    fifo = json.loads((out / "fifo" / "results.json").read_text())
    assert fifo["status"] == "invalid" and "not a regular file" in fifo["output"]
    huge = json.loads((out / "huge" / "results.json").read_text())
    assert huge["status"] == "invalid" and "larger than" in huge["output"]
    assert by_sub["meta.ipynb"]["score"] == 6, "null nbgrader metadata must still be graded"
    graded = [r for r in rows if r["score"] == 6]
    assert len(graded) == 5  # '..', newline, undecodable, '=', meta
    written = set(tmp_path.rglob("*")) - before
    assert all(out in p.parents or p == out or p in out.parents for p in written), sorted(map(str, written))
    with open(out / "summary.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], "a spreadsheet would read a cell as a formula"
    assert all(r["stem"] and ".." not in r["stem"] and "/" not in r["stem"] for r in rows)


def test_resume_regrades_a_different_file_with_the_same_name(tmp_path, toy_suite):
    sub = tmp_path / "alice.py"
    sub.write_text(CORRECT)
    out = tmp_path / "out"
    assert grade_many(toy_suite, [sub], out)[0]["score"] == 6
    sub.write_text(WRONG)  # a new file under the same name
    assert grade_many(toy_suite, [sub], out)[0]["score"] == 4, "resume must not skip a different file"
    mtime = (out / "alice" / "results.json").stat().st_mtime_ns
    assert grade_many(toy_suite, [sub], out)[0]["score"] == 4
    assert (out / "alice" / "results.json").stat().st_mtime_ns == mtime, "the same file must not be regraded"
