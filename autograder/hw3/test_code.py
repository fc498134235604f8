"""HW3 hidden suite, Part C: extracting code from answers, and pass@1 on planted programs -- correct, wrong on
a later test, crashing, not even Python, looping, slow, and hostile (tries to leave files behind and to reach a
socket of the grading process).

pass_at_1 runs each program with ``run_python`` INSIDE the grader's own sandbox, so its bubblewrap sandbox is
nested; where bwrap cannot nest, run_python runs a plain subprocess (still inside the grader's sandbox). The
hostile program's side effects are judged only where the grader's own run_python, run in the same place as a
control, keeps them in: "touches nothing" means "as much as run_python itself". The expected scores are the
reference's, computed here while the student's code runs (the programs' CPU seconds overlap); the hostile
programs are never run here -- they end in ``raise SystemExit(3)``, so they fail by construction."""
from concurrent.futures import ThreadPoolExecutor

import torch

from genai_course.grading import Checks, expect, expect_close, expect_equal, graded, randint, reference
from genai_course.grading.api import diagnose

ref = reference("hw3")
NAMES = ("scale", "shift", "clip", "twice", "offset", "mix", "tally", "bump")


def _fn(g, name=None):
    """(name, a, b): a function f(x) = a * x + b with a name drawn per submission."""
    return name or f"{NAMES[randint(g, 0, len(NAMES) - 1)]}_{randint(g, 10, 99)}", randint(g, 2, 9), randint(g, -9, 9)


def _code(name, a, b, indent=""):
    return f"def {name}(x):\n{indent}    return {a} * x + {b}"


# ---- C.1 extract_code -----------------------------------------------------------------------------------------

@graded(points=3, timeout=10)
def test_extract_code(student):
    """extract_code: the first ```/```python/```py/```Python block, an unclosed one to the end, else the whole text; cut at <|im_end|>"""
    g = student.rng()
    checks = Checks()
    name, a, b = _fn(g)
    code, other = _code(name, a, b), _code(*_fn(g))
    body = f"    return {a} * x + {b}"
    cases = {
        "prose around a ```python block": f"Sure! Here is the function:\n```python\n{code}\n```\nIt returns {a} * x + {b}.",
        "a ```py block": f"```py\n{code}\n```",
        "a ```Python block whose fence line ends in spaces": f"Answer:\n```Python  \n{code}\n```\n",
        "a bare ``` block": f"Here you go.\n```\n{code}\n```\nHope it helps.",
        "an unclosed block": f"Try this:\n```python\n{code}\n",
        "no block at all": f"{code}\n\n",
        "<|im_end|> before a block": f"{code}\n<|im_end|>\n```python\n{other}\n```",
        "<|im_end|> inside the block": f"```python\n{code}\n<|im_end|>\nprint('not code')\n```",
        "two blocks (the first counts)": f"First:\n```python\n{code}\n```\nOr:\n```python\n{other}\n```",
        "an indented first line between blank lines": f"The body:\n```python\n\n{body}\n\n```",
        "the closing fence at the end of a line": f"```python\n{code}```",
    }
    for label, text in cases.items():
        with checks.case(label):
            want = ref.extract_code(text)
            got = student.call("extract_code", text)
            expect_equal(got, want, f"extract_code(<{label}>)", hint=diagnose(got, {
                "strip only leading and trailing newlines: the indentation of the first line is code": want.strip(),
                "cut at <|im_end|> first: what follows it is not the answer": ref.extract_code(text.replace("<|im_end|>", "")),
                "remove the leading and trailing newlines of the result": text.split("<|im_end|>")[0]},
                default="see the docstring's three steps"))
    return checks


# ---- C.2 pass_at_1 ----------------------------------------------------------------------------------------------

LOOP = "def {name}(x):\n    return {a} * x + {b}\n\nwhile True:\n    pass\n"
SLOW = ("import time\n\nstart = time.process_time()\nwhile time.process_time() - start < 1.4:  # 1.4 s of CPU\n    pass\n\n\n"
        "def {name}(x):\n    return {a} * x + {b}")
HOSTILE = '''import os
import socket


def {name}(x):
    return {a} * x + {b}


for folder in ("/tmp", "/dev/shm", os.path.expanduser("~"), os.getcwd(), "/submission", "/program", "/"):
    try:
        with open(os.path.join(folder, "{MARKER}"), "w") as f:
            f.write("pwned")
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", {PORT}), timeout=2).close()
except OSError:
    pass
raise SystemExit(3)
'''


def _tests(name, a, b, g):
    xs = [0] + [randint(g, 2, 20) for _ in range(2)]
    return [f"assert {name}({x}) == {a * x + b}" for x in xs]


def _fill(template, name, a, b):
    return template.replace("{name}", name).replace("{a}", str(a)).replace("{b}", str(b))


def _problems(g, kinds):
    """One problem per kind, each with its own function; the completions a model might have written."""
    problems, completions = [], []
    for kind in kinds:
        name, a, b = _fn(g)
        problems.append({"prompt": f"Write {name}(x).", "tests": _tests(name, a, b, g)})
        code = _code(name, a, b)
        completions.append({
            "correct, in a fence with prose": f"Here it is:\n```python\n{code}\n```\nDone.",
            "correct, bare code without a final newline": code,
            "correct for x = 0 only (fails a later assert)": _code(name, a + 1, b),
            "crashes (NameError)": f"def {name}(x):\n    return {a} * x + {b} + undefined_name",
            "not Python": f"def {name}(x)\n    return {a} x + {b}",
            "prose without a fence": f"The answer is {name}(x) = {a}x + {b}.",
            "loops forever": _fill(LOOP, name, a, b),
            "uses 1.4 s of CPU, then is correct": _fill(SLOW, name, a, b),
            "hostile": _fill(HOSTILE, name, a, b),
        }[kind])
    return problems, completions


def _shuffled(g, kinds):
    return [kinds[i] for i in torch.randperm(len(kinds), generator=g).tolist()]


@graded(points=3, timeout=30)
def test_pass_at_1(student):
    """pass_at_1: the fraction of problems whose program (extracted code + every assert) exits 0, for planted completions"""
    g = student.rng()
    checks = Checks()
    basic = ["correct, in a fence with prose", "correct, bare code without a final newline",
             "correct for x = 0 only (fails a later assert)", "crashes (NameError)", "not Python", "prose without a fence"]
    sets = {"six kinds of completions": _shuffled(g, basic),
            "three correct ones and a wrong one": _shuffled(g, basic[:2] + [basic[randint(g, 0, 1)], basic[2]])}
    with ThreadPoolExecutor(1) as pool:
        for label, kinds in sets.items():
            with checks.case(label):
                problems, completions = _problems(g, kinds)
                timeout = float(randint(g, 3, 6))
                want = pool.submit(ref.pass_at_1, problems, completions, timeout)
                got = student.call("pass_at_1", problems, completions, timeout)
                want = want.result()
                expect_close(got, want, f"pass_at_1(<{len(problems)} problems: {', '.join(kinds)}>, timeout={timeout:g})",
                             atol=1e-9, hint="program = extract_code(completion) + '\\n\\n' + '\\n'.join(tests) + '\\n'; "
                                             "it passes when run_python(program, timeout=timeout).status == 'passed'")
    with checks.case("an empty list scores 0.0"):
        expect_close(student.call("pass_at_1", [], []), 0.0, "pass_at_1([], [])", atol=0,
                     hint="an empty list scores 0.0 (no division by zero)")
    with checks.case("lists of different lengths raise ValueError"):
        problems, completions = _problems(g, basic[:2])
        err = student.probe("call_error", fn="pass_at_1", args=[problems, completions[:1]])
        expect(err is not None and err["type"] == "ValueError", "pass_at_1(2 problems, 1 completion)",
               f"raised {err['type']}" if err else "did not raise", hint="raise ValueError when the lengths differ")
    return checks


@graded(points=2, timeout=20)
def test_pass_at_1_limits(student):
    """pass_at_1: a looping program times out and fails, timeout is passed on, a hostile program touches nothing"""
    g = student.rng()
    checks = Checks()
    with ThreadPoolExecutor(1) as pool:
        with checks.case("a program that loops forever counts as a failure (timeout 0.5 s)"):
            kinds = _shuffled(g, ["loops forever", "correct, in a fence with prose", "correct for x = 0 only (fails a later assert)",
                                  "correct, bare code without a final newline"])
            problems, completions = _problems(g, kinds)
            want = pool.submit(ref.pass_at_1, problems, completions, 0.5)
            got = student.call("pass_at_1", problems, completions, 0.5)
            expect_close(got, want.result(), f"pass_at_1(<{', '.join(kinds)}>, timeout=0.5)", atol=1e-9,
                         hint="the looping program must count as a failure: only status 'passed' passes "
                              "('timeout' is not a pass)")
        problems, completions = _problems(g, _shuffled(g, ["uses 1.4 s of CPU, then is correct", "correct, in a fence with prose"]))
        for timeout in (1.0, 3.0):
            with checks.case(f"a program that needs 1.4 CPU seconds, with timeout={timeout:g}"):
                want = pool.submit(ref.pass_at_1, problems, completions, timeout)
                got = student.call("pass_at_1", problems, completions, timeout)
                expect_close(got, want.result(), f"pass_at_1(<a correct program, one that needs 1.4 s of CPU>, timeout={timeout:g})",
                             atol=1e-9, hint="pass timeout on: run_python(program, timeout=timeout)")
        kinds = _shuffled(g, ["hostile", "correct, in a fence with prose", "correct, bare code without a final newline"])
        problems, completions = _problems(g, kinds)
        hostile = [i for i, k in enumerate(kinds) if k == "hostile"]
        safe = [i for i in range(len(kinds)) if i not in hostile]
        # the hostile program ends in raise SystemExit(3): it fails by construction and is never run here
        want = pool.submit(ref.pass_at_1, [problems[i] for i in safe], [completions[i] for i in safe], 3.0)
        got = {}
        with checks.case("a hostile program (writes files, opens a socket, exits 3) counts as a failure"):
            got = student.probe("pass_hostile", problems=problems, completions=completions, timeout=3.0, hostile=hostile)
            expect_close(got["score"], want.result() * len(safe) / len(kinds), f"pass_at_1(<{', '.join(kinds)}>, timeout=3)",
                         atol=1e-9, hint="a program passes only when its exit status is 0")
        if got and not got["control"]["files"] and not got["control"]["connections"]:
            with checks.case("the hostile program touched nothing outside its own sandbox"):
                seen = got["student"]
                expect(not seen["files"] and not seen["connections"], "running a hostile program through pass_at_1",
                       f"it left files in {seen['files']} and made {seen['connections']} connection(s) to the grading process",
                       hint="run every program with run_python (its own sandbox: private /tmp, no network), never with "
                            "exec() or a plain subprocess")
    return checks
