"""genai-course student-edition: nothing of the instructors' leaks into it, it is a clean git tree,
and it sets up, tests, runs a homework notebook, checks it and opens a lab without instructor tools.

The set-up reuses this checkout's venv through a stand-in folder (its own install stamp, so nothing
is installed) and imports the edition's own package via PYTHONPATH.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from genai_course.cli import main as cli_main
from genai_course.data import sources
from genai_course.student_edition import (NBGRADER_LAB_EXTENSION, EditionError, leaks, student_edition,
                                          student_markdown)

from .test_course_sh import running_lab
from .test_docs import broken_links

ROOT = Path(__file__).resolve().parents[1]
MAIN_VENV = ROOT / ".venv"
MARKERS = [f"{edge} {what}" for what in ("SOLUTION", "HIDDEN TESTS") for edge in ("BEGIN", "END")]
# HW0's train_one_epoch/evaluate solution shares these generic lines with the package's own
# gc.training.fit/evaluate (src/genai_course/training.py), which the edition ships on purpose.
KNOWN_IN_PACKAGE = {
    "model.train(was_training)", "total, count = 0.0, 0", "loss_sum += loss_fn(logits, y).item() * len(y)",
    "was_training = model.training", "total += loss.item() * len(y)", "loss = loss_fn(model(x), y)",
}
# HW3's suite shares these generic lines with the package it builds on (loading a module from a file, the
# tokenizer from the artifact's metadata, a forked RNG, walking children): nothing of a hidden input or check.
KNOWN_SUITE_IN_PACKAGE = {
    "with torch.random.fork_rng(devices=[]):", "for name, child in list(module.named_children()):",
    "return _tokenizer_from_meta(meta)", "module = importlib.util.module_from_spec(spec)",
    "spec.loader.exec_module(module)",
}


def edition_files(edition: Path) -> dict[Path, str]:
    """Relative path -> text ('' for binary files), without .git."""
    out = {}
    for p in sorted(edition.rglob("*")):
        rel = p.relative_to(edition)
        if p.is_file() and ".git" not in rel.parts:
            try:
                out[rel] = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                out[rel] = ""
    return out


def solution_lines() -> set[str]:
    """Lines (≥ 20 characters) of the master notebooks' solution regions."""
    out = set()
    for nb in ROOT.glob("solutions/hw*/hw*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            inside = False
            for line in "".join(cell["source"]).splitlines():
                s = line.strip()
                if s.startswith(f"### {MARKERS[0]}"):
                    inside = True
                elif s.startswith(f"### {MARKERS[1]}"):
                    inside = False
                elif inside and cell["cell_type"] == "code" and len(s) >= 20:
                    out.add(s)
    return out


def released_text() -> str:
    return "\n".join(p.read_text() for p in ROOT.glob("homework/**/*") if p.is_file() and p.suffix in (".ipynb", ".py"))


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    start = time.monotonic()
    dest = student_edition(tmp_path_factory.mktemp("edition") / "genai-course")
    print(f"student edition built in {time.monotonic() - start:.1f} s")
    return dest


def test_no_solutions_hidden_tests_or_instructor_config(edition):
    files = edition_files(edition)
    names = {str(rel) for rel in files}
    for forbidden in ("solutions/", "autograder/", "tests/grading/", "benchmarks/"):
        assert not [n for n in names if n.startswith(forbidden)], forbidden
    assert not {"nbgrader_config.py", "gradebook.db", "CHANGELOG.md", "tests/test_gpu.py"} & names
    # hidden-suite files under any name or folder, and their names outside the package source
    hidden = sorted(p for p in ROOT.glob("autograder/*/*.py"))
    assert hidden, "no hidden suites to compare with"
    assert not {rel for rel in files if rel.name in {p.name for p in hidden} and rel.parts[0] != "tests"}
    for rel, text in files.items():
        if rel.parts[0] != "src":
            assert not [p.name for p in hidden if re.search(rf"(?<![\w]){re.escape(p.name)}", text)], rel
    # nbgrader's solution and hidden-test delimiters
    for rel, text in files.items():
        assert not [m for m in MARKERS if f"### {m}" in text], rel
    # the reference solution's own lines (those the released homework does not contain) ...
    distinctive = solution_lines() - {s for s in solution_lines() if s in released_text()}
    assert len(distinctive) > 100
    everything = "\n".join(files.values())
    assert sorted(s for s in distinctive - KNOWN_IN_PACKAGE if s in everything) == []
    # ... and the hidden suites' lines (imports aside)
    public = released_text()
    suite_lines = {s for p in hidden for line in p.read_text().splitlines()
                   if len(s := line.strip()) >= 30 and s not in public and not re.match(r"(from|import) ", s)}
    assert len(suite_lines) > 100
    assert sorted(s for s in suite_lines - KNOWN_SUITE_IN_PACKAGE if s in everything) == []
    assert leaks(edition) == []


def test_has_what_students_need(edition):
    for rel in ("README.md", "course.sh", "pyproject.toml", ".gitignore", ".student-edition", "docs/schedule.md",
                "docs/faq.md", "data/README.md", "src/genai_course/data/manifest.json", "lectures/README.md"):
        assert (edition / rel).is_file(), rel
    for hw in sorted(p.name for p in (ROOT / "homework").iterdir() if p.is_dir()):
        for name in (f"{hw}.ipynb", "public_checks.py", "public_probes.py"):
            assert (edition / "homework" / hw / name).read_bytes() == (ROOT / "homework" / hw / name).read_bytes()
    for ckpt in (ROOT / "data" / "checkpoints").glob("*.safetensors"):
        assert (edition / "data" / "checkpoints" / ckpt.name).read_bytes() == ckpt.read_bytes()
    readme = (edition / "README.md").read_text()
    assert "student edition" in readme and "For instructors" not in readme and "<!--" not in readme
    assert "solutions/" not in readme.replace("in the full repository, `solutions/`", "")
    assert broken_links(edition) == []


def test_is_a_clean_git_tree(edition, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(edition, copy)
    (copy / ".venv").mkdir()  # what set-up and use leave behind must stay out of git
    (copy / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (copy / "data" / "cache").mkdir()
    (copy / "data" / "cache" / "mnist.safetensors").write_bytes(b"x")
    git = ["git", "-C", str(copy), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "Student edition"]):
        subprocess.run(git + cmd, check=True, capture_output=True, timeout=60)
    tracked = subprocess.run(git + ["ls-files"], check=True, capture_output=True, text=True).stdout.split()
    assert sorted(tracked) == sorted(str(rel) for rel in edition_files(edition))


def test_refuses_a_used_or_inner_destination(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(EditionError, match="not an empty folder"):
        student_edition(tmp_path / "used")
    with pytest.raises(EditionError, match="inside the course"):
        student_edition(ROOT / "student-edition")
    assert not (ROOT / "student-edition").exists()


def test_markdown_markers():
    text = ("# T\n<!-- student edition: Hello students. -->\n\nshared\n"
            "row <!-- full repository -->\n<!-- BEGIN full repository -->\n## Instructors\n"
            "<!-- END full repository -->\nend\n")
    assert student_markdown(text) == "# T\nHello students.\n\nshared\nend\n"
    with pytest.raises(EditionError):
        student_markdown("<!-- BEGIN full repository -->\nno end\n")


def test_cli_command(tmp_path, capsys):
    assert cli_main(["student-edition", str(tmp_path / "ed")]) == 0
    out = capsys.readouterr().out
    assert "homework" in out and "total" in out and (tmp_path / "ed" / "course.sh").is_file()
    assert cli_main(["student-edition", str(tmp_path / "ed")]) == 1
    assert "not an empty folder" in capsys.readouterr().err


def test_leaks_finds_planted_material(edition, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(edition, copy)
    shutil.copy(ROOT / "solutions" / "hw0" / "hw0.ipynb", copy / "homework" / "hw0" / "master.ipynb")
    (copy / "autograder").mkdir()
    found = leaks(copy)
    assert "autograder exists" in found
    assert f"homework/hw0/master.ipynb contains '### {MARKERS[0]}'" in found


# ---- using it: set-up, test command, a notebook, the check, the lab ----------------------------

@pytest.fixture(scope="module")
def edition_env(edition, tmp_path_factory) -> dict[str, str]:
    """Environment for the edition's commands: a venv folder that is this checkout's venv under
    another name with its own install stamp (no install), and the edition's own package first."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    venv.mkdir()
    (venv / "bin").symlink_to(MAIN_VENV / "bin")
    (venv / "lib").symlink_to(MAIN_VENV / "lib")
    shutil.copy(MAIN_VENV / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / ".genai-course-installed").touch()
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "JUPYTER_CONFIG_PATH", "GENAI_COURSE_ROOT", "PYTHONPATH")}
    env.update(VENV=str(venv), PYTHONPATH=str(edition / "src"), GENAI_COURSE_DATA=str(sources.data_dir()),
               PATH=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                    if Path(p).resolve() != (MAIN_VENV / "bin").resolve()))
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


@pytest.mark.slow
def test_sets_up_and_passes_its_own_tests(edition, edition_env):
    """The README's test command in the edition: set-up (venv present, data cached: no install), then
    its own tests (the lab tests, marked slow, run in this checkout's suite)."""
    which, _ = run([f"{edition_env['VENV']}/bin/python", "-c",
                    "import importlib.util; print(importlib.util.find_spec('genai_course').origin)"],
                   edition, edition_env, 60)
    assert which.stdout.strip() == str(edition / "src" / "genai_course" / "__init__.py")
    # Deselected to save time: tests that read nothing from the tree (training runs, the 5 s index
    # time-out); they run in this checkout's suite.
    tests, seconds = run(["bash", "course.sh", "test", "-q", "-m", "not slow", "-k", "not learns and not unreachable"],
                         edition, edition_env, 300)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "installing" not in tests.stdout and "verified" in tests.stdout
    summary = tests.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d\d+ passed", summary) and "failed" not in summary and "error" not in summary, summary
    print(f"edition set-up + test command: {seconds:.1f} s; {summary}")


@pytest.mark.slow
def test_homework_notebook_runs_until_the_first_stub(edition, edition_env):
    """HW0 in quick mode, as a student runs it from the top: imports, data and helpers work, and the
    first failure is the first stub's NotImplementedError."""
    folder = edition / "homework" / "hw0"
    nb = nbformat.read(folder / "hw0.ipynb", as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(folder)}})
    with pytest.raises(CellExecutionError) as err:
        client.execute(env={**edition_env, "GENAI_COURSE_QUICK": "1", "MPLBACKEND": "Agg"})
    assert err.value.ename == "NotImplementedError"
    ran = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert len(ran) >= 4
    assert all(o.output_type != "error" for c in ran[:-1] for o in c.outputs)
    assert "NotImplementedError" in "".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_check_runs_on_the_edition(edition, edition_env):
    proc, _ = run([f"{edition_env['VENV']}/bin/genai-course", "check", "hw0.ipynb"], edition / "homework" / "hw0",
                  edition_env, 300)
    assert proc.returncode in (0, 1), proc.stderr  # 1: checks fail (the stubs), 2 would be a grader error
    assert "Public checks of HW0 on hw0.ipynb" in proc.stdout and "[FAIL] accuracy" in proc.stdout


@pytest.mark.slow
def test_lab_has_no_instructor_tools(edition, edition_env, tmp_path):
    with running_lab(edition, edition_env, tmp_path) as lab:
        status, page = lab.get("/lab")
        assert status == 200
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.S).group(1))
        assert NBGRADER_LAB_EXTENSION in config["disabledExtensions"]
        assert lab.get("/formgrader")[0] == 404
