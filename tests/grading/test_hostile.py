"""Broken and hostile submissions: each ends in bounded time, earns only what it computed, gets a
clear message, and changes nothing outside its sandbox. Graded with the toy suite (6 points:
add 2, scale 3, counter 1)."""
from __future__ import annotations

import json
import socket
import subprocess
import textwrap
import time

import pytest

from genai_course.grading import grade_submission
from genai_course.grading.sandbox import bwrap_usable

from .conftest import TOY, write

CORRECT = (TOY / "correct.py").read_text()


def _grade(tmp_path, source, suite, limits, name="sub.py"):
    path = write(tmp_path, name, textwrap.dedent(source))
    start = time.monotonic()
    result = grade_submission(path, suite, limits=limits)
    return result, time.monotonic() - start


def _scores(result):
    return {t["test_id"]: t["score"] for t in result["tests"]}


def _outputs(result):
    return "\n".join(t["output"] for t in result["tests"])


def test_correct_submission_scores_full(tmp_path, toy_suite, quick_limits):
    result, _ = _grade(tmp_path, CORRECT, toy_suite, quick_limits)
    assert result["score"] == 6 and result["status"] == "graded"
    assert bwrap_usable(), "bubblewrap must be installed for these tests (course.sh installs it)"


# Top-level statements are never run (only definitions are extracted), so code that runs at import
# time hides in what a definition evaluates: a class body, a default argument, a decorator.
@pytest.mark.parametrize("body,where", [
    ("class Boom:\n    import sys\n    sys.exit(0)\n", "called sys.exit"),
    ("def f(x=exec('raise SystemExit(3)')):\n    pass\n", "SystemExit"),
    ("def g(x=__import__('os')._exit(0)):\n    pass\n", "died while importing"),
    ("class K:\n    raise KeyboardInterrupt\n", "KeyboardInterrupt"),
])
def test_exits_at_import(tmp_path, toy_suite, quick_limits, body, where):
    result, seconds = _grade(tmp_path, CORRECT + body, toy_suite, quick_limits)
    assert result["score"] == 0 and seconds < 60
    assert where in _outputs(result)


def test_exits_inside_functions_cost_only_those_tests(tmp_path, toy_suite, quick_limits):
    src = CORRECT.replace("    return a + b", "    import os\n    os._exit(0)").replace(
        "    return t * k", "    raise KeyboardInterrupt")
    result, seconds = _grade(tmp_path, src, toy_suite, quick_limits)
    assert _scores(result) == {"test_add": 0, "test_scale": 0, "test_counter": 1}
    assert "died" in result["tests"][0]["output"] and "KeyboardInterrupt" in result["tests"][1]["output"]
    assert seconds < 60


def test_top_level_statements_never_run(tmp_path, toy_suite, quick_limits):
    result, _ = _grade(tmp_path, CORRECT + "import sys\nsys.exit(0)\nwhile True:\n    pass\n", toy_suite, quick_limits)
    assert result["score"] == 6


def test_infinite_loop_at_import(tmp_path, toy_suite, quick_limits):
    result, seconds = _grade(tmp_path, CORRECT + "class Spin:\n    while True:\n        pass\n", toy_suite, quick_limits)
    assert result["score"] == 0
    assert "did not finish within" in _outputs(result)
    assert result["extra_data"]["sandboxes"] == 1, "one import timeout, not one per test"
    assert seconds < quick_limits.wall_guard(quick_limits.import_seconds) + 30


def test_infinite_loop_in_a_function(tmp_path, toy_suite, quick_limits):
    src = CORRECT.replace("    return a + b", "    while True:\n        pass")
    result, seconds = _grade(tmp_path, src, toy_suite, quick_limits)
    assert _scores(result) == {"test_add": 0, "test_scale": 3, "test_counter": 1}
    assert "did not finish within the time limit" in result["tests"][0]["output"]
    assert seconds < 8 + 30


def test_fork_bomb_is_contained(tmp_path, toy_suite, quick_limits):
    src = CORRECT.replace("    return a + b", "    import os\n    while True:\n        try:\n            os.fork()\n"
                          "        except OSError:\n            pass")
    before = _process_count()
    result, seconds = _grade(tmp_path, src, toy_suite, quick_limits)
    assert _scores(result)["test_scale"] == 3 and _scores(result)["test_counter"] == 1
    assert _scores(result)["test_add"] == 0
    assert seconds < 90
    time.sleep(0.5)
    assert _process_count() <= before + 5, "forked processes survived the grading run"


def test_thread_bomb_is_contained(tmp_path, toy_suite, quick_limits):
    src = CORRECT.replace("    return t * k", "    import threading, time\n    while True:\n"
                          "        threading.Thread(target=time.sleep, args=(100,), daemon=True).start()")
    result, seconds = _grade(tmp_path, src, toy_suite, quick_limits)
    assert _scores(result) == {"test_add": 2, "test_scale": 0, "test_counter": 1}
    assert seconds < 60


def test_huge_allocation_fails_cleanly(tmp_path, toy_suite, quick_limits):
    src = CORRECT.replace("    return t * k", "    x = torch.ones(30 * 2**30 // 4)  # 30 GB\n    return t * k")
    result, seconds = _grade(tmp_path, src, toy_suite, quick_limits)
    assert _scores(result) == {"test_add": 2, "test_scale": 0, "test_counter": 1}
    assert seconds < 60


def _process_count() -> int:
    return len(subprocess.run(["ps", "-e", "-o", "pid="], capture_output=True, text=True).stdout.split())


def test_cannot_see_or_touch_the_course(tmp_path, toy_suite, quick_limits):
    from genai_course.grading.runner import course_root

    root = course_root()
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    src = CORRECT.replace("    return a + b", textwrap.indent(textwrap.dedent(f"""\
        import os
        seen = []
        for p in [{str(root / 'solutions' / 'hw0' / 'hw0.ipynb')!r}, {str(root / 'autograder' / 'hw0' / 'test_part_a.py')!r},
                  {str(canary)!r}]:
            try:
                open(p).read()
                seen.append(p)
            except OSError:
                pass
        try:
            listing = os.listdir({str(root)!r})
        except OSError:
            listing = []
        if seen or 'autograder' in listing or 'solutions' in listing:
            raise RuntimeError('LEAK ' + repr(seen) + repr(listing))
        return a + b"""), "    "))
    src += textwrap.dedent(f"""
        import os
        for p in [{str(canary)!r}]:
            try:
                os.remove(p)
            except OSError:
                pass
        try:
            open({str(tmp_path / 'pwned.txt')!r}, 'w').write('x')
        except OSError:
            pass
        """)
    result, _ = _grade(tmp_path, src, toy_suite, quick_limits)
    assert _scores(result)["test_add"] == 2, _outputs(result)
    assert canary.read_text() == "intact" and not (tmp_path / "pwned.txt").exists()


def test_no_network(tmp_path, toy_suite, quick_limits):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    src = CORRECT.replace("    return a + b", f"    import socket\n    try:\n"
                          f"        socket.create_connection(('127.0.0.1', {port}), timeout=2)\n        return -1\n"
                          f"    except OSError:\n        return a + b")
    result, _ = _grade(tmp_path, src, toy_suite, quick_limits)
    assert _scores(result)["test_add"] == 2
    with pytest.raises(socket.timeout):
        server.accept()
    server.close()


def test_fake_passed_lines_and_monkeypatching_earn_nothing(tmp_path, toy_suite, quick_limits):
    src = textwrap.dedent("""\
        import builtins, json, math, torch
        import genai_course.grading.api as api
        torch.allclose = lambda *a, **k: True
        torch.equal = lambda *a, **k: True
        math.isclose = lambda *a, **k: True
        api.expect_close = lambda *a, **k: None
        builtins.abs = lambda x: 0
        print("test_add PASSED 2/2\\ntest_scale PASSED 3/3")
        print(json.dumps({"score": 6, "tests": []}))
        def add(a, b):
            print("PASSED")
            return 42
        def scale(t, k):
            return t
        """)
    result, _ = _grade(tmp_path, src, toy_suite, quick_limits)
    assert result["score"] == 0
    assert "values differ" in _outputs(result)


def test_objects_with_rigged_eq_earn_nothing(tmp_path, toy_suite, quick_limits):
    src = textwrap.dedent("""\
        import torch
        class Eq(float):
            def __eq__(self, other):
                return True
        class T(torch.Tensor):
            def __eq__(self, other):
                return True
        class Anything:
            def __eq__(self, other):
                return True
        def add(a, b):
            return Anything()
        def scale(t, k):
            return torch.zeros_like(t).as_subclass(T)
        class Counter:
            def bump(self):
                return Anything()
        """)
    result, _ = _grade(tmp_path, src, toy_suite, quick_limits)
    assert result["score"] == 0
    assert "returned an object of type Anything" in _outputs(result)


@pytest.mark.parametrize("content,message", [
    ("{this is not json", "not a valid notebook"),
    (json.dumps({"cells": [{"cell_type": "markdown", "source": "only text"}], "metadata": {}}), "no code cells"),
])
def test_broken_notebooks(tmp_path, toy_suite, quick_limits, content, message):
    result, seconds = _grade(tmp_path, content, toy_suite, quick_limits, name="hw0.ipynb")
    assert result["score"] == 0 and result["status"] == "invalid" and message in result["output"]
    assert len(result["tests"]) == 3 and seconds < 5


def test_missing_definitions_and_wrong_signatures(tmp_path, toy_suite, quick_limits):
    src = "def add(a):\n    return a\n\ndef scale(t, k):\n    return t * k\n"
    result, _ = _grade(tmp_path, src, toy_suite, quick_limits)
    assert _scores(result) == {"test_add": 0, "test_scale": 3, "test_counter": 0}
    assert "TypeError" in result["tests"][0]["output"] and "add() takes 1 positional argument" in result["tests"][0]["output"]
    assert "`Counter` is not defined in your submission" in result["tests"][2]["output"], result["tests"][2]["output"]
    assert result["status"] == "graded"


def test_grading_is_deterministic(tmp_path, toy_suite, quick_limits):
    src = CORRECT.replace("    return t * k", "    return t * k + (t > 0.5).float() * 1e-3")  # right on most inputs
    scores = {_grade(tmp_path, src, toy_suite, quick_limits)[0]["score"] for _ in range(5)}
    assert len(scores) == 1


def test_without_bubblewrap_falls_back_loudly(tmp_path, toy_suite, quick_limits, monkeypatch):
    monkeypatch.setenv("GENAI_COURSE_NO_BWRAP", "1")
    with pytest.warns(RuntimeWarning, match="WITHOUT filesystem or network isolation"):
        result, _ = _grade(tmp_path, CORRECT.replace("return t * k", "raise SystemExit"), toy_suite, quick_limits)
    assert _scores(result) == {"test_add": 2, "test_scale": 0, "test_counter": 1}
    assert "graded without the bubblewrap sandbox" in result["output"]
