"""Small programming problems with unit tests, made by the project (HW3's code adapter and its evaluation).

A problem is a chain of one to three *operations* on a value -- an integer, a string, or a list of
integers -- such as "reverses it", "keeps only the even numbers", "adds 2 to every element". Each
operation has Python code, a reference function and a wording. ``code_tasks(split, n)`` builds problems
deterministically:

* ``"train"``: chains of 1, 2 or 3 operations (equally often) drawn from the *training* operations
  (the 3-step ones from the third of all 3-step chains that val and test never use), worded with the
  six training templates, four connectives before the last step, two ways of saying each type, and
  function names that are descriptive (``apply_reverse_str_then_upper``) or short (``task_17``); each
  comes with its reference solution (the fine-tuning target).
* ``"val"`` / ``"test"``: chains of exactly 3 operations, each split from its own third of the 3-step
  chains (so every combination is new to training); every 4th contains one of the 8 operations training
  never shows (``HELD_OUT_OPS``); worded with a sentence template and connectives that training never
  uses, with neutral function names (``solve_17``) and types described in other words ("a list of whole
  numbers"). Each has 3-5 ``assert`` tests computed by the reference functions on seeded inputs, chosen
  so that leaving out any one operation fails one of them.

Every problem is a dict: ``task_id``, ``prompt`` (the request to the model), ``entry_point`` (the
function name), ``tests`` (list of ``assert ...`` lines), ``solution`` (reference code).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

INT, STR, LIST = "int", "str", "list"
TYPE_WORDS = {INT: "an integer", STR: "a string", LIST: "a list of integers"}
TYPE_WORDS_TEST = {INT: "a whole number", STR: "some text (a str)", LIST: "a list of whole numbers"}


@dataclass(frozen=True)
class Op:
    key: str
    src: str  # input type
    dst: str  # output type
    code: str  # an expression in x
    text: str  # what it does, as a clause ("reverses it")
    fn: Callable


def _digits(x: int) -> list[int]:
    return [int(c) for c in str(abs(x))]


def _dedupe(x: list[int]) -> list[int]:
    seen, out = set(), []
    for v in x:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _cumsum(x: list[int]) -> list[int]:
    out, total = [], 0
    for v in x:
        total += v
        out.append(total)
    return out


OPS: tuple[Op, ...] = (
    # integers
    Op("double", INT, INT, "x * 2", "multiplies it by 2", lambda x: x * 2),
    Op("square", INT, INT, "x * x", "squares it", lambda x: x * x),
    Op("add3", INT, INT, "x + 3", "adds 3 to it", lambda x: x + 3),
    Op("negate", INT, INT, "-x", "negates it", lambda x: -x),
    Op("abs", INT, INT, "abs(x)", "takes its absolute value", abs),
    Op("half", INT, INT, "x // 2", "divides it by 2 with floor division", lambda x: x // 2),
    Op("mod7", INT, INT, "x % 7", "takes the remainder after dividing by 7", lambda x: x % 7),
    Op("digit_sum", INT, INT, "sum(int(c) for c in str(abs(x)))", "sums the digits of its absolute value", lambda x: sum(_digits(x))),
    Op("to_str", INT, STR, "str(x)", "converts it to a string", str),
    Op("digits", INT, LIST, "[int(c) for c in str(abs(x))]", "lists the digits of its absolute value", _digits),
    # strings
    Op("reverse_str", STR, STR, "x[::-1]", "reverses it", lambda x: x[::-1]),
    Op("upper", STR, STR, "x.upper()", "converts it to upper case", str.upper),
    Op("lower", STR, STR, "x.lower()", "converts it to lower case", str.lower),
    Op("no_spaces", STR, STR, "x.replace(' ', '')", "removes all spaces",
       lambda x: x.replace(" ", "")),
    Op("underscores", STR, STR, "x.replace(' ', '_')", "replaces spaces with underscores", lambda x: x.replace(" ", "_")),
    Op("swapcase", STR, STR, "x.swapcase()", "swaps the case of every letter", str.swapcase),
    Op("no_vowels", STR, STR, "''.join(c for c in x if c.lower() not in 'aeiou')", "removes the vowels", lambda x: "".join(c for c in x if c.lower() not in "aeiou")),
    Op("sort_chars", STR, STR, "''.join(sorted(x))", "sorts its characters",
       lambda x: "".join(sorted(x))),
    Op("first3", STR, STR, "x[:3]", "keeps its first 3 characters",
       lambda x: x[:3]),
    Op("str_len", STR, INT, "len(x)", "takes its length", len),
    Op("count_vowels", STR, INT, "sum(c.lower() in 'aeiou' for c in x)", "counts its vowels", lambda x: sum(c.lower() in "aeiou" for c in x)),
    Op("word_count", STR, INT, "len(x.split())", "counts its words",
       lambda x: len(x.split())),
    Op("word_lengths", STR, LIST, "[len(w) for w in x.split()]", "lists the length of each word", lambda x: [len(w) for w in x.split()]),
    # lists of integers
    Op("sort", LIST, LIST, "sorted(x)", "sorts it in ascending order", sorted),
    Op("reverse_list", LIST, LIST, "x[::-1]", "reverses it", lambda x: x[::-1]),
    Op("evens", LIST, LIST, "[v for v in x if v % 2 == 0]", "keeps only the even numbers", lambda x: [v for v in x if v % 2 == 0]),
    Op("positives", LIST, LIST, "[v for v in x if v > 0]", "keeps only the positive numbers", lambda x: [v for v in x if v > 0]),
    Op("square_each", LIST, LIST, "[v * v for v in x]", "squares every element",
       lambda x: [v * v for v in x]),
    Op("add2_each", LIST, LIST, "[v + 2 for v in x]", "adds 2 to every element",
       lambda x: [v + 2 for v in x]),
    Op("dedupe", LIST, LIST, "list(dict.fromkeys(x))", "removes duplicates, keeping the first occurrences in order", _dedupe),
    Op("cumsum", LIST, LIST, "[sum(x[:i + 1]) for i in range(len(x))]", "replaces it by its running totals", _cumsum),
    Op("drop_first", LIST, LIST, "x[1:]", "drops its first element", lambda x: x[1:]),
    Op("sum", LIST, INT, "sum(x)", "takes the sum of its elements", sum),
    Op("max", LIST, INT, "max(x)", "takes its largest element", max),
    Op("min", LIST, INT, "min(x)", "takes its smallest element", min),
    Op("list_len", LIST, INT, "len(x)", "takes the number of its elements", len),
    Op("count_even", LIST, INT, "sum(1 for v in x if v % 2 == 0)", "counts its even numbers", lambda x: sum(1 for v in x if v % 2 == 0)),
    Op("join_digits", LIST, STR, "''.join(str(v) for v in x)", "joins its elements into one string", lambda x: "".join(str(v) for v in x)),
)
OPS_BY_KEY = {op.key: op for op in OPS}
# Operations that never appear in training problems (a quarter of the held-out problems use one).
HELD_OUT_OPS = frozenset({"digit_sum", "swapcase", "no_vowels", "count_vowels", "dedupe", "cumsum", "mod7",
                          "join_digits"})
TRAIN_OPS = tuple(op for op in OPS if op.key not in HELD_OUT_OPS)
HELD_OUT_SHARE = 0.25  # of val/test problems (every 4th), this share contains one held-out operation

TRAIN_TEMPLATES = (
    "Write a Python function `{name}(x)` that takes {type} `x`, {steps}, and returns the result.\n"
    "For example, `{name}({ex_in})` returns `{ex_out}`.",
    "Define `{name}(x)`. Given {type} x, the function {steps} and returns the result. "
    "Example: {name}({ex_in}) == {ex_out}",
    "Create a function named {name} with one parameter x ({type}). It {steps}, then returns what it has. "
    "{name}({ex_in}) should be {ex_out}.",
    "Task: {name}(x), where x is {type}.\nSteps: it {steps}.\nReturn the outcome; e.g. {name}({ex_in}) "
    "gives {ex_out}.",
    "Please code `{name}`: it receives {type} x, {steps}, and returns that. For instance "
    "{name}({ex_in}) is {ex_out}.",
    "I need a function `{name}(x)` for {type}. It should do this: {steps}. Return the value at the end "
    "(so {name}({ex_in}) == {ex_out}).",
)
# Training varies the words around the operations (templates, the connective before the last step, how the
# argument's type is said, descriptive or short function names), so that a tuned model follows the
# operations rather than one sentence; the held-out wording below still uses none of them.
TRAIN_CONNECTIVES = ("then", "and then", "and finally", "and last")
TRAIN_TYPE_WORDS = (TYPE_WORDS, {INT: "an int", STR: "a Python string", LIST: "a list of ints"})
TRAIN_NAME_PREFIXES = ("task", "func", "compute", "transform", "process")
TEST_TEMPLATE = ("Implement `{name}`. Its argument x is {type}. The function {steps}, in that order, and gives "
                 "back the final value. Sample call: {name}({ex_in}) -> {ex_out}")
SPLIT_SEEDS = {"train": 1, "val": 2, "test": 3}
SPLIT_THIRD = {"train": 0, "val": 1, "test": 2}
_WORDS = ("apple", "Banana", "cat", "dog", "Echo", "data", "Python", "code", "loop", "river", "Stone", "tree", "moon",
          "sun", "Alpha", "queue", "stack", "list", "Hello", "world")


def _sample_input(kind: str, rng: random.Random):
    if kind == INT:
        return rng.randint(-60, 99)
    if kind == STR:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    return [rng.randint(-9, 12) for _ in range(rng.randint(2, 7))]


def _run(chain: tuple[Op, ...], x):
    for op in chain:
        x = op.fn(x)
    return x


def _safe_run(chain: tuple[Op, ...], x) -> tuple[bool, object]:
    try:
        return True, _run(chain, x)
    except Exception:  # a shortened chain may not type-check (len of an int ...): it differs
        return False, None


def _chains(ops: tuple[Op, ...], length: int) -> list[tuple[Op, ...]]:
    chains = [(op,) for op in ops]
    for _ in range(length - 1):
        chains = [c + (op,) for c in chains for op in ops if op.src == c[-1].dst and op.key != c[-1].key]
    return chains


def _joined(phrases: list[str], then: str) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + f", {then} " + phrases[-1]


def solution_code(name: str, chain: tuple[Op, ...]) -> str:
    """The reference solution: for each operation, its wording as a comment, then one line of code.

    The comments are there for fine-tuning: a model that first restates the step it is at (copying from
    the request) and then writes that step's code keeps its place in the chain, and each line of code
    depends on the words right above it rather than on how the request was phrased."""
    lines = [f"def {name}(x):"]
    for op in chain:
        lines += [f"    # {op.text}", f"    x = {op.code}"]
    return "\n".join(lines + ["    return x"])


def _problem(task_id: str, name: str, chain: tuple[Op, ...], template: str, then: str, type_words: dict,
             rng: random.Random, n_tests: int) -> dict | None:
    examples, seen = [], set()
    for _ in range(60):
        x = _sample_input(chain[0].src, rng)
        if repr(x) in seen:
            continue
        try:
            y = _run(chain, x)
        except (ValueError, IndexError):  # max/min of an emptied list: not a valid input for this chain
            continue
        seen.add(repr(x))
        examples.append((x, y))
        if len(examples) == n_tests + 1:
            break
    if len(examples) < n_tests + 1:
        return None
    # The tests must notice every single step: leaving any one operation out changes some answer.
    for i in range(len(chain)):
        shorter = chain[:i] + chain[i + 1:]
        if shorter and all(_safe_run(shorter, x) == (True, y) for x, y in examples[1:]):
            return None
    (ex_in, ex_out), tests = examples[0], examples[1:]
    steps = _joined([op.text for op in chain], then)
    prompt = template.format(name=name, type=type_words[chain[0].src], steps=steps, ex_in=repr(ex_in), ex_out=repr(ex_out))
    return {"task_id": task_id, "prompt": prompt, "entry_point": name,
            "tests": [f"assert {name}({x!r}) == {y!r}" for x, y in tests], "solution": solution_code(name, chain),
            "ops": [op.key for op in chain]}


def code_tasks(split: str = "train", n: int | None = None) -> list[dict]:
    """Deterministic problems of one split (see the module docstring); ``n`` of them (default: train 2,000,
    val 40, test 40)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"code_tasks: split must be one of {tuple(SPLIT_SEEDS)}, got {split!r}")
    rng = random.Random(SPLIT_SEEDS[split])
    out: list[dict] = []
    three = sorted(_chains(OPS, 3), key=lambda c: tuple(op.key for op in c))
    third = three[SPLIT_THIRD[split]::3]  # train, val and test each own a disjoint third of the 3-step chains
    if split == "train":
        n = 2000 if n is None else n
        by_length = [_chains(TRAIN_OPS, 1), _chains(TRAIN_OPS, 2),
                     [c for c in third if not any(op.key in HELD_OUT_OPS for op in c)]]
        while len(out) < n:
            chain = rng.choice(rng.choice(by_length))  # lengths 1, 2 and 3 equally often
            if rng.random() < 0.5:
                name = "apply_" + "_then_".join(op.key for op in chain)  # never a builtin's name (sum, max ...)
            else:
                name = f"{rng.choice(TRAIN_NAME_PREFIXES)}_{rng.randint(1, 99)}"
            p = _problem(f"train/{len(out)}", name, chain, rng.choice(TRAIN_TEMPLATES), rng.choice(TRAIN_CONNECTIVES),
                         rng.choice(TRAIN_TYPE_WORDS), rng, 3)
            if p is not None:
                out.append(p)
        return out
    n = 40 if n is None else n
    pool = list(third)
    rng.shuffle(pool)
    groups = {True: iter([c for c in pool if sum(op.key in HELD_OUT_OPS for op in c) == 1]),
              False: iter([c for c in pool if not any(op.key in HELD_OUT_OPS for op in c)])}
    every = round(1 / HELD_OUT_SHARE)
    for i in range(n):  # problems 0, 4, 8, ... contain one held-out operation
        for chain in groups[i % every == 0]:
            p = _problem(f"{split}/{i}", f"solve_{i}", chain, TEST_TEMPLATE, "and after that", TYPE_WORDS_TEST,
                         rng, rng.randint(3, 5))
            if p is not None:
                out.append(p)
                break
    if len(out) < n:
        raise ValueError(f"code_tasks: only {len(out)} {split} problems can be made, asked for {n}")
    return out
