"""The project's install files agree with each other and with the README."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The student edition (genai-course student-edition) installs the package without the instructor extra.
STUDENT_EDITION = (ROOT / ".student-edition").is_file()


def _pins(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([0-9][^;\s]*)$", req.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_pyproject_requirement_is_pinned():
    project = _pyproject()
    reqs = project["dependencies"] + [r for name, extra in project["optional-dependencies"].items()
                                      if name != "all" for r in extra]
    unpinned = [r for r in reqs if r.lower() not in {f"{k}=={v}" for k, v in _pins([r]).items()}]
    assert not unpinned, f"pin these with ==: {unpinned}"
    assert "torch==2.13.0" in project["dependencies"]


def test_environment_yml_matches_pyproject_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    project = _pyproject()
    want = _pins(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name != "all" and not (STUDENT_EDITION and name == "instructor"):
            want.update(_pins(extra))
    assert _pins(pip_section) == want
    assert pip_section[0] == "torch==2.13.0", "torch must be installed first"
    assert ("-e .[course,test]" if STUDENT_EDITION else "-e .[all]") in pip_section
    assert project["requires-python"].startswith(">=3.11")


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "bash course.sh" in readme and "bash course.sh test" in readme
    assert "GENAI_COURSE_QUICK" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash course.sh test" in ci
    course = (ROOT / "course.sh").read_text()
    # the order of the pip calls is tested in test_course_sh.py (setup with a fake interpreter)
    assert 'TORCH_PIN="torch==2.13.0"' in course
