"""The trust boundary between the grader and a hostile child (issue #11), one class per test:
unbounded replies, claims computed inside the child, hidden material in feedback, the child's uid,
cgroups, and the grader's own failures. Graded with the trust suite (4 points: budget, double,
probe, quick) from fixtures/trust."""
from __future__ import annotations

import os
import resource
import struct
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from genai_course.grading import grade_submission
from genai_course.grading import student as student_mod
from genai_course.grading.protocol import MAX_ELEMENTS, ProtocolError, decode_reply, encode_reply
from genai_course.grading.runner import load_tests
from genai_course.grading.sandbox import _CGROUP_ROOT, _own_cgroups

from .conftest import FIXTURES, write

TRUST = FIXTURES / "trust"
CORRECT = (TRUST / "correct.py").read_text()


@pytest.fixture(scope="module")
def trust_suite():
    return load_tests([TRUST / "suite_trust.py"], "trust", TRUST / "probes.py")


def _grade(tmp_path, source, suite, limits, name="sub.py", **kw):
    path = write(tmp_path, name, textwrap.dedent(source))
    start = time.monotonic()
    return grade_submission(path, suite, limits=limits, **kw), time.monotonic() - start


def _scores(result):
    return {t["test_id"]: t["score"] for t in result["tests"]}


def _out(result):
    return result["output"] + "\n" + "\n".join(t["output"] for t in result["tests"])


# --- replies are decoded with bounds ------------------------------------------------------------------

def _frame_dict(value_bytes: bytes) -> bytes:
    return b"M" + struct.pack(">I", 2) + b"S" + struct.pack(">I", 2) + b"ok" + b"T" + \
        b"S" + struct.pack(">I", 5) + b"value" + value_bytes


@pytest.mark.parametrize("payload,message", [
    # a tensor of 10^12 elements described in a few bytes (the stride-0 trick of torch.save)
    (_frame_dict(b"X" + struct.pack(">BB", 0, 2) + struct.pack(">2Q", 10**6, 10**6)), "tensor elements"),
    # a list that claims 10^9 items
    (_frame_dict(b"L" + struct.pack(">I", 10**9) + b"N"), "longer than the message"),
    # the old format: a torch.save archive is not accepted at all
    (b"PK\x03\x04" + b"\x00" * 64, "unknown tag"),
    # nesting far beyond the limit
    (_frame_dict(b"L\x00\x00\x00\x01" * 500 + b"N"), "nested too deeply"),
    # a tensor whose bytes are missing
    (_frame_dict(b"X" + struct.pack(">BB", 0, 1) + struct.pack(">Q", 1000) + b"\x00" * 8), "truncated"),
])
def test_decoder_rejects_replies_that_describe_more_than_they_carry(payload, message):
    start = time.monotonic()
    with pytest.raises(ProtocolError, match=message):
        decode_reply(payload)
    assert time.monotonic() - start < 1


def test_decoder_caps_the_number_of_values():
    many = _frame_dict(b"L" + struct.pack(">I", 1_200_000) + b"N" * 1_200_000)
    with pytest.raises(ProtocolError, match="values"):
        decode_reply(many)


def test_round_trip_of_plain_values():
    value = {"t": torch.arange(6.0).reshape(2, 3), "s": torch.tensor(3.5), "b": torch.tensor([True, False]),
             "e": torch.empty(0, 4), "l": [1, -2**40, 2.5, "x", None, True], "u": (1, "y")}
    got = decode_reply(encode_reply({"ok": True, "value": value}))["value"]
    assert torch.equal(got["t"], value["t"]) and got["s"].shape == () and float(got["s"]) == 3.5
    assert got["b"].dtype == torch.bool and got["e"].shape == (0, 4)
    assert got["l"] == value["l"] and got["u"] == (1, "y")


def test_child_writing_its_own_frames_to_the_reply_pipe_costs_only_that_test(tmp_path, trust_suite, quick_limits):
    """The student's code finds the reply pipe and writes a crafted frame that would describe 10^12
    elements; the parent stays bounded and only that test loses its point."""
    src = CORRECT.replace("def double(t):\n    return t * 2", textwrap.dedent("""\
        def double(t):
            import os, struct
            body = (b"M" + struct.pack(">I", 2) + b"S" + struct.pack(">I", 2) + b"ok" + b"T"
                    + b"S" + struct.pack(">I", 5) + b"value"
                    + b"X" + struct.pack(">BB", 0, 2) + struct.pack(">2Q", 10**6, 10**6))
            for fd in map(int, os.listdir("/proc/self/fd")):
                if fd > 2:
                    try:
                        os.write(fd, struct.pack(">Q", len(body)) + body)
                    except OSError:
                        pass
            return t * 2"""))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result, seconds = _grade(tmp_path, src, trust_suite, quick_limits)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert _scores(result) == {"test_budget": 1, "test_double": 0, "test_probe": 0, "test_quick": 1}
    assert "invalid reply" in _out(result) and result["status"] == "graded"
    assert grown_mb < 500 and seconds < 90
    assert MAX_ELEMENTS < 10**12


# --- what decides points is observed from outside ---------------------------------------------------------

def test_memory_budget_is_enforced_from_outside(tmp_path, trust_suite, quick_limits):
    result, _ = _grade(tmp_path, CORRECT, trust_suite, quick_limits)
    assert result["score"] == 4, _out(result)
    greedy = CORRECT.replace("    total = 0.0\n", "    x = torch.arange(n, dtype=torch.float64)\n    return float((x * x).sum())\n")
    result, _ = _grade(tmp_path, greedy, trust_suite, quick_limits)
    assert _scores(result)["test_budget"] == 0 and "memory budget of 32 MB" in _out(result)


@pytest.mark.parametrize("patch", [
    # lift the limit the worker is asked to set on itself
    "import resource\nresource.setrlimit = lambda *a, **k: None\n",
    # pretend to have no memory at all when the budget is computed
    "import builtins\n_open = builtins.open\nbuiltins.open = lambda f, *a, **k: _open('/dev/null') if str(f) == '/proc/self/status' else _open(f, *a, **k)\n",
])
def test_patching_the_child_cannot_lift_the_budget(tmp_path, trust_suite, quick_limits, patch):
    """A submission that materialises 64 MB and patches the process at import so that the budget
    is not applied earns nothing for that test: the parent reads the limit from /proc."""
    greedy = CORRECT.replace("    total = 0.0\n", "    x = torch.arange(n, dtype=torch.float64)\n    return float((x * x).sum())\n")
    hack = f"class _Hack:\n    exec({patch!r})\n"
    result, _ = _grade(tmp_path, greedy + hack, trust_suite, quick_limits)
    assert _scores(result)["test_budget"] == 0, _out(result)


def test_a_sleeping_function_is_the_students_timeout(tmp_path, trust_suite, quick_limits):
    src = CORRECT.replace("def quick():\n    return 7", "def quick():\n    import time\n    time.sleep(1000)")
    result, seconds = _grade(tmp_path, src, trust_suite, quick_limits)
    assert _scores(result) == {"test_budget": 1, "test_double": 1, "test_probe": 1, "test_quick": 0}
    assert result["status"] == "graded" and "did not finish within the time limit" in _out(result)
    assert seconds < quick_limits.wall_guard(1) + 40


def test_a_starved_worker_is_the_graders_problem(tmp_path, trust_suite, quick_limits, monkeypatch):
    """When the wall-clock guard fires while the worker was waiting for a CPU (the kernel's run-queue
    delay), the test is run again, and then reported as not graded -- never as a 0 for the student."""
    src = CORRECT.replace("def quick():\n    return 7", "def quick():\n    import time\n    time.sleep(1000)")
    monkeypatch.setattr(student_mod, "run_delay", lambda pid: time.monotonic() * 10)  # always waiting
    result, _ = _grade(tmp_path, src, trust_suite, quick_limits)
    quick = next(t for t in result["tests"] if t["test_id"] == "test_quick")
    assert quick["status"] == "grader_error" and quick["extra_data"]["attempts"] == 3
    assert "NOT GRADED" in quick["output"] and "too busy" in quick["output"]
    assert result["status"] == "grader_error" and result["not_graded"] == ["test_quick"]


def test_a_failing_grader_probe_is_labelled_as_the_graders(tmp_path, trust_suite, quick_limits):
    """A probe that breaks on what the student returned says so (never "your code raised"), scores 0
    and lists the test for review -- without failing the batch; a class or function that the probe
    needs and the student deleted is reported as not defined."""
    src = CORRECT.replace("def double(t):\n    return t * 2", "def double(t):\n    return (t * 2).tolist()")
    result, _ = _grade(tmp_path, src, trust_suite, quick_limits)
    probe = next(t for t in result["tests"] if t["test_id"] == "test_probe")
    assert probe["score"] == 0 and result["status"] == "graded" and result["probe_errors"] == ["test_probe"]
    assert "grader's probe `doubled_sum`" in probe["output"] and "contact the course staff" in probe["output"]
    assert "your code raised" not in probe["output"]
    missing = CORRECT.replace("def double(t):\n    return t * 2", "")
    result, _ = _grade(tmp_path, missing, trust_suite, quick_limits)
    probe = next(t for t in result["tests"] if t["test_id"] == "test_probe")
    assert "`double` is not defined in your submission" in probe["output"], probe["output"]
    assert result["status"] == "graded" and "probe_errors" not in result


# --- hidden material stays hidden ------------------------------------------------------------------------

SNOOP = """
def _snoop():
    import gc, sys
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, (str, bytes)) and (b"ns.double" if isinstance(obj, bytes) else "ns.double") in obj:
            found.append(obj if isinstance(obj, str) else obj.decode("latin-1"))
    f = sys._getframe()
    while f is not None:
        for v in list(f.f_locals.values()):
            if isinstance(v, dict):
                found += [str(x) for x in v.values() if "ns.double" in str(x)]
        f = f.f_back
    return " | ".join(found) + " " + "X" * 5000
"""


def test_probe_source_never_reaches_feedback(tmp_path, trust_suite, quick_limits):
    at_import = CORRECT + SNOOP + "class Leak:\n    raise RuntimeError('LEAK ' + _snoop())\n"
    in_call = CORRECT.replace("def double(t):\n    return t * 2", "def double(t):\n    raise RuntimeError('LEAK ' + _snoop())") + SNOOP
    for src in (at_import, in_call):
        result, _ = _grade(tmp_path, src, trust_suite, quick_limits)
        text = _out(result)
        assert "LEAK" in text, text[:500]
        assert "ns.double" not in text and "doubled_sum(ns" not in text
        assert max(len(t["output"]) for t in result["tests"]) < 1500


def test_inputs_depend_on_the_secret_and_the_submission(tmp_path, trust_suite, quick_limits):
    show = CORRECT.replace("def double(t):\n    return t * 2",
                           "def double(t):\n    raise ValueError(repr([round(v, 6) for v in t.flatten()[:4].tolist()]))")

    def seen(source, secret):
        result, _ = _grade(tmp_path, source, trust_suite, quick_limits, secret=secret)
        return next(t["output"] for t in result["tests"] if t["test_id"] == "test_double")

    a = seen(show, b"course-secret")
    assert seen(show, b"course-secret") == a, "the same submission must get the same inputs"
    assert seen(show + "\n# a comment outside the graded code\n", b"course-secret") == a
    assert seen(show + "\nANOTHER_SUBMISSION = 1\n", b"course-secret") != a
    assert seen(show, b"another-course") != a


# --- the child's identity and cgroups --------------------------------------------------------------------

def test_child_runs_unprivileged_and_cannot_read_root_only_files(tmp_path, trust_suite, quick_limits):
    src = CORRECT.replace("def double(t):\n    return t * 2", textwrap.dedent("""\
        def double(t):
            import os
            try:
                open("/etc/shadow").read()
                shadow = "readable"
            except OSError:
                shadow = "denied"
            raise ValueError(f"uid={os.getuid()},{os.geteuid()} gid={os.getgid()} shadow={shadow}")"""))
    result, _ = _grade(tmp_path, src, trust_suite, quick_limits)
    text = _out(result)
    if os.geteuid() == 0:
        assert "uid=65534,65534 gid=65534" in text, text
    else:
        assert f"uid={os.getuid()}" in text
    assert "shadow=denied" in text or not Path("/etc/shadow").exists()


def _cgroup_bases() -> list[Path]:
    own = _own_cgroups()
    bases = [_CGROUP_ROOT / c / own.get(c, "/").lstrip("/") for c in ("pids", "memory")]
    return [b for b in bases if b.is_dir() and os.access(b, os.W_OK)]


def test_sandbox_cgroups_are_nested_under_the_graders_and_removed(tmp_path, trust_suite, quick_limits):
    bases = _cgroup_bases()
    if not bases:
        pytest.skip("this process may not create cgroups here (the grader then relies on rlimits)")
    stale = bases[0] / "genai-grade-999999999-deadbeef"  # left by a killed grader (that pid is not alive)
    stale.mkdir(exist_ok=True)
    seen: set[Path] = set()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for b in bases:
                seen.update(b.glob(mine))
            time.sleep(0.05)

    mine = f"genai-grade-{os.getpid()}-*"  # other graders may run on this machine at the same time
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result, _ = _grade(tmp_path, CORRECT, trust_suite, quick_limits)
    finally:
        stop.set()
        watcher.join()
    assert result["score"] == 4
    assert seen, "no sandbox cgroup was created under the grader's own cgroup"
    assert not stale.exists(), "a stale cgroup of a dead grader was not removed"
    assert not [d for b in bases for d in b.glob(mine)], "sandbox cgroups were left behind"
    top_level = [d for c in ("pids", "memory") for d in (_CGROUP_ROOT / c).glob(mine)]
    assert all(d.parent in bases for d in top_level), "a sandbox cgroup escaped to the cgroup root"
