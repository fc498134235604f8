from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from genai_course import cli


def test_help_lists_data_command(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert "data" in out and "prepare and verify" in out


def test_data_command_verifies_cache(capsys):
    assert cli.main(["data", "sentiment"]) == 0
    out = capsys.readouterr().out
    assert "sentiment" in out and "verified" in out


def test_data_command_reports_unknown_dataset(capsys):
    assert cli.main(["data", "imagenet"]) == 1
    assert "Unknown dataset" in capsys.readouterr().err


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "genai_course.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "genai-course" in proc.stdout


def test_check_finds_a_bare_notebook_name_from_the_course_root(monkeypatch, capsys):
    """JupyterLab opens terminals in the course root: `genai-course check hw0.ipynb` typed there
    checks homework/hw0/hw0.ipynb instead of saying it does not exist."""
    from genai_course.grading import check

    root = Path(__file__).resolve().parents[1]
    seen = []
    passed = {"tests": [{"score": 1.0, "max_score": 1.0}]}
    monkeypatch.setattr(check, "run_check", lambda nb, assignment=None: (seen.append(nb), (passed, "report"))[1])
    monkeypatch.chdir(root)
    assert cli.main(["check", "hw0.ipynb"]) == 0
    assert seen == [root / "homework" / "hw0" / "hw0.ipynb"]
    monkeypatch.chdir(root / "homework")
    assert cli.main(["check", "hw7.ipynb"]) == 2
    assert "does not exist" in capsys.readouterr().err
