"""HW3's shared pieces: the SmolLM2 loader, the tiny Llama, the generated code problems, the chat and
HumanEval loaders, and the sandbox that runs model-written programs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import genai_course as gc
from genai_course.data import codetasks
from genai_course.execution import run_python

# --- code problems ---------------------------------------------------------------------------------------


def _passes(problem: dict, code: str | None = None) -> bool:
    ns: dict = {}
    exec(code or problem["solution"], ns)
    try:
        for line in problem["tests"]:
            exec(line, ns)
    except AssertionError:
        return False
    return True


def test_code_tasks_are_deterministic_and_sized():
    for split, n in (("train", 2000), ("val", 40), ("test", 40)):
        a, b = gc.data.code_tasks(split), gc.data.code_tasks(split)
        assert a == b and len(a) == n
    assert len(gc.data.code_tasks("test", 10)) == 10
    with pytest.raises(ValueError, match="split must be one of"):
        gc.data.code_tasks("eval")


def test_reference_solutions_pass_their_tests_and_wrong_code_fails():
    for split in ("train", "val", "test"):
        for p in gc.data.code_tasks(split):
            assert _passes(p), p["task_id"]
    # A solution that skips the last operation fails the tests of every held-out problem.
    for p in gc.data.code_tasks("test"):
        ops = [codetasks.OPS_BY_KEY[k] for k in p["ops"]]
        wrong = codetasks.solution_code(p["entry_point"], tuple(ops[:-1]))
        assert not _passes(p, wrong), p["task_id"]


def test_held_out_problems_are_harder_than_training():
    train, val, test = (gc.data.code_tasks(s) for s in ("train", "val", "test"))
    train_ops = {k for p in train for k in p["ops"]}
    assert not train_ops & codetasks.HELD_OUT_OPS, "held-out operations must never appear in training"
    assert {len(p["ops"]) for p in train} == {1, 2, 3}
    for split in (val, test):
        for i, p in enumerate(split):
            assert len(p["ops"]) == 3 and len(set(p["ops"]) & codetasks.HELD_OUT_OPS) == (i % 4 == 0), p["ops"]
            assert 3 <= len(p["tests"]) <= 5
            assert p["entry_point"] == f"solve_{i}"
            assert p["prompt"].startswith("Implement") and "and after that" in p["prompt"]
            for op in p["ops"]:
                assert codetasks.OPS_BY_KEY[op].text in p["prompt"]
    assert not any(q["prompt"].startswith("Implement") or "and after that" in q["prompt"] or "solve_" in q["prompt"]
                   or any(w in q["prompt"] for w in codetasks.TYPE_WORDS_TEST.values()) for q in train)
    # training's own wording varies: every template, connective and type wording, both kinds of names
    for template in codetasks.TRAIN_TEMPLATES:
        head = template.split("{")[0]
        assert sum(q["prompt"].startswith(head) for q in train) > 100, head
    long = [q for q in train if len(q["ops"]) >= 2]
    for connective in codetasks.TRAIN_CONNECTIVES:
        assert sum(f", {connective} " in q["prompt"] for q in long) > 100, connective
    assert sum(q["entry_point"].startswith("apply_") for q in train) > 600
    assert sum(not q["entry_point"].startswith("apply_") for q in train) > 600
    assert not {tuple(p["ops"]) for p in val} & {tuple(p["ops"]) for p in test}, "val and test must be disjoint"
    assert not {tuple(p["ops"]) for p in train} & {tuple(p["ops"]) for p in test}


# --- chat and HumanEval ----------------------------------------------------------------------------------

def test_chat_conversations_alternate_and_splits_are_disjoint():
    train, val = gc.data.load_chat("train"), gc.data.load_chat("val")
    assert len(train) == 809 + 2697 and len(val) == 90 + 300
    for conv in train + val:
        assert len(conv) % 2 == 0 and 2 <= len(conv) <= 6
        assert [m["role"] for m in conv] == ["user", "assistant"] * (len(conv) // 2)
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in conv)
    chitchat_val = {str(c) for c in gc.data.load_chat("val", sources=("chitchat",))}
    assert not chitchat_val & {str(c) for c in gc.data.load_chat("train", sources=("chitchat",))}
    with pytest.raises(ValueError, match="unknown sources"):
        gc.data.load_chat("train", sources=("reddit",))


def test_humaneval_canonical_solutions_pass_in_the_sandbox():
    problems = gc.data.load_humaneval()
    assert len(problems) == 164 and problems[0]["task_id"] == "HumanEval/0"
    for p in problems[:3]:
        program = p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + f"\ncheck({p['entry_point']})\n"
        assert run_python(program, timeout=10).status == "passed", p["task_id"]
        broken = p["prompt"] + "    return None\n" + "\n" + p["test"] + f"\ncheck({p['entry_point']})\n"
        assert run_python(broken, timeout=10).status == "failed", p["task_id"]


# --- the sandbox for model-written programs --------------------------------------------------------------

def test_run_python_statuses():
    assert run_python("def f(x):\n    return 2 * x\nassert f(2) == 4\n").status == "passed"
    r = run_python("def f(x):\n    return 3 * x\nassert f(2) == 4\n")
    assert r.status == "failed" and "AssertionError" in r.output
    assert run_python("raise ValueError('boom')").status == "failed"
    assert run_python("import sys; sys.exit(3)").returncode == 3
    assert run_python("x = bytearray(8 << 30)").status == "failed"  # over the address-space limit
    r = run_python("while True:\n    pass\n", timeout=1)
    assert r.status == "timeout" and not r.passed
    with pytest.raises(TypeError, match="must be a str"):
        run_python(b"print(1)")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        run_python("print(1)", timeout=0)


def test_run_python_timeout_counts_cpu_not_wall_time():
    # 0.6 s of CPU passes a 2 s limit even while both cores are busy (the wall-clock guard is 4x + 10 s).
    program = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass\n"
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        start = time.perf_counter()
        r = run_python(program, timeout=2)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert r.status == "passed", (r, time.perf_counter() - start)


def test_run_python_from_a_venv_of_symlinks(tmp_path: Path):
    """A venv whose bin/ and lib/ are symlinks into another tree (the student edition's test set-up, and
    a common way to share one install): the sandbox must still find the interpreter and its libraries.
    Before the fix bwrap stopped at "Can't mkdir .../lib/python3.x" (or could not exec a symlink whose
    target was outside the sandbox) and every program "failed"."""
    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        pytest.fail("this test runs from the project's virtual environment (course.sh test)")
    first, venv = tmp_path / "first", tmp_path / "venv"  # venv/bin -> first/bin -> <prefix>/bin: two hops
    for folder, target in ((first, prefix), (venv, first)):
        folder.mkdir()
        for name in ("bin", "lib"):
            (folder / name).symlink_to(target / name)
        (folder / "pyvenv.cfg").write_text((prefix / "pyvenv.cfg").read_text())
    src = Path(gc.__file__).resolve().parents[1]
    code = ("from genai_course.execution import run_python\n"
            "r = run_python('import sys, json; print(sys.executable); assert json.loads(\"[1]\") == [1]')\n"
            "print(r.status, r.output)\n")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(src)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("passed " + str(venv / "bin" / "python")), out.stdout


def test_run_python_cannot_touch_the_machine(tmp_path: Path):
    target = tmp_path / "pwned"
    os.chmod(tmp_path, 0o777)
    program = (f"import os, socket\nopen({str(target)!r}, 'w').write('x')\n")
    r = run_python(program)
    assert r.status == "failed" and not target.exists()
    r = run_python("import socket\nsocket.create_connection(('10.0.0.1', 80), timeout=2)\n")
    assert r.status == "failed"
    r = run_python("import os\nfor _ in range(1000):\n    os.fork()\n", timeout=5)
    assert r.status in ("failed", "passed") and r.seconds < 30
    r = run_python(f"import os\nos.system('touch {target}')\nassert not os.path.exists({str(target)!r})\n")
    assert not target.exists()


# --- the models ------------------------------------------------------------------------------------------

def test_tiny_llama_is_seeded_and_a_llama():
    a, b, c = gc.models.tiny_llama(0), gc.models.tiny_llama(0), gc.models.tiny_llama(1)
    assert type(a).__name__ == "LlamaForCausalLM"
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["model.layers.0.self_attn.q_proj.weight"], sc["model.layers.0.self_attn.q_proj.weight"])
    assert a.model.layers[0].self_attn.k_proj.out_features == 2 * 64 // 4  # grouped-query attention: 2 of 4 heads
    ids = torch.randint(0, 256, (2, 7))
    assert a(ids).logits.shape == (2, 7, 256)


@pytest.fixture(scope="module")
def smollm():
    torch.manual_seed(0)
    return gc.models.load_smollm2()


def test_smollm2_architecture_and_tokenizer(smollm):
    model, tok = smollm
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.lm_head.weight is model.model.embed_tokens.weight, "input and output embeddings are tied"
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (30, 576, 9, 3)
    assert model.dtype == torch.float32 and not model.training
    assert len(tok) == 49152 and tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(tok("def f(x):\n    return x")["input_ids"]) == "def f(x):\n    return x"


def test_smollm2_knows_things(smollm):
    """The converted weights are the real model: it answers a factual question and prefers real text."""
    model, tok = smollm
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:])
    ids = tok("The cat sat on the mat because it was tired and wanted to sleep.", return_tensors="pt")["input_ids"]
    shuffled = ids[:, torch.randperm(ids.shape[1], generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        real = model(ids, labels=ids).loss.item()
        scrambled = model(shuffled, labels=shuffled).loss.item()
    assert real < 5.0 and scrambled > real + 2.0, (real, scrambled)  # uniform guessing: ln 49152 = 10.8
