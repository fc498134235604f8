"""The grading command line: exit codes and outputs other tools rely on."""
from __future__ import annotations

import csv
import json
import re

from genai_course import cli
from genai_course.grading.runner import course_root

ROOT = course_root()


def test_grade_unknown_assignment_exits_2(tmp_path, capsys):
    assert cli.main(["grade", "--assignment", "hw99", "--out", str(tmp_path), str(tmp_path / "x.ipynb")]) == 2
    assert "unknown assignment 'hw99'" in capsys.readouterr().err


def test_grade_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["grade", "--assignment", "hw0", "--out", str(blocker / "sub"), str(tmp_path / "x.ipynb")]) == 2
    assert "cannot write to" in capsys.readouterr().err


def test_grade_writes_results_and_summary_and_skips_graded(tmp_path, capsys):
    bad = tmp_path / "broken.ipynb"
    bad.write_text("{oops")
    args = ["grade", "--assignment", "hw0", "--out", str(tmp_path / "out"), str(bad)]
    assert cli.main(args) == 0
    result = json.loads((tmp_path / "out" / "broken" / "results.json").read_text())
    assert result["score"] == 0 and "not a valid notebook" in result["output"]
    rows = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    assert rows[0]["stem"] == "broken" and rows[0]["status"] == "invalid" and float(rows[0]["max_score"]) == 32
    mtime = (tmp_path / "out" / "broken" / "results.json").stat().st_mtime_ns
    assert cli.main(args) == 0
    assert (tmp_path / "out" / "broken" / "results.json").stat().st_mtime_ns == mtime, "resumed run regraded"
    assert cli.main(args + ["--force"]) == 0
    assert (tmp_path / "out" / "broken" / "results.json").stat().st_mtime_ns != mtime


def test_check_reports_what_is_left_and_exits_1(capsys):
    assert cli.main(["check", str(ROOT / "homework" / "hw0" / "hw0.ipynb")]) == 1, "a failing check must exit 1"
    out = capsys.readouterr().out
    assert re.search(r"\b0 of \d+ public checks pass", out) and "[FAIL] accuracy" in out
    assert "replace `raise NotImplementedError()` with your code" in out


def test_check_on_the_solution_passes_everything(capsys):
    assert cli.main(["check", str(ROOT / "solutions" / "hw0" / "hw0.ipynb")]) == 0
    m = re.search(r"(\d+) of (\d+) public checks pass", capsys.readouterr().out)
    assert m and m.group(1) == m.group(2)


def test_check_missing_notebook(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "hw0.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err
