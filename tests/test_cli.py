from __future__ import annotations

import subprocess
import sys

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
