"""Public checks of HW3, run by `genai-course check hw3.ipynb`: one or more per graded definition, on small
inputs whose answers follow from the docstrings (a LoRA layer with chosen factors, the tiny Llama, two short
conversations with the real SmolLM2 tokenizer, planted programs). When a result is wrong, the check names the
common bug it matches. The hidden suite compares everything with the reference (and peft's LoRA layer) on
other inputs."""
import json

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, Fail, expect, expect_close, expect_equal, graded
from genai_course.grading.api import diagnose

QV = [f"model.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]


def _layer_inputs():
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(4, 64, generator=g) / 8, torch.randn(4, generator=g) / 10
    A, B = torch.randn(2, 64, generator=g) / 8, torch.randn(4, 2, generator=g)
    return w, b, A, B, torch.randn(3, 64, generator=g)


def _bug(description: str) -> str:
    return f"this looks like a known bug: {description}"


@graded(points=1)
def check_lora_init(student):
    """LoRALinear at initialisation: A (r, in) Kaiming-uniform, B (out, r) zero, so it equals its frozen base"""
    w, b, _, _, x = _layer_inputs()
    got = student.probe("lora_at_init", weight=w, bias=b, r=2, alpha=4.0, x=x)
    what = "LoRALinear(nn.Linear(64, 4), r=2, alpha=4)"
    expect(got["A_shape"] == [2, 64] and got["B_shape"] == [4, 2], what,
           f"lora_A / lora_B have shapes {got['A_shape']} / {got['B_shape']}",
           hint="lora_A is (r, in_features) and lora_B is (out_features, r), both nn.Parameter")
    expect(got["B_is_zero"], f"{what}.lora_B at initialisation", "is not all zeros",
           hint=_bug("B must start at zero, so the adapted layer starts as the pretrained one"))
    expect(got["A_max"] is not None and 0 < got["A_max"] <= 0.125 * (1 + 1e-6), f"{what}.lora_A",
           f"has max |A| = {got['A_max']}, expected values in (0, 1/sqrt(64) = 0.125]",
           hint="nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5)): uniform on [-1/sqrt(in), 1/sqrt(in)]")
    expect_equal(got["trainable"], ["lora_A", "lora_B"], f"the trainable parameters of {what}",
                 hint="freeze the base layer: requires_grad_(False) on its weight and bias")
    expect_close(got["out"], F.linear(x, w, b), f"{what}(x) at initialisation", atol=1e-6,
                 hint="with B = 0 the layer must equal its base layer exactly")


@graded(points=1)
def check_lora_forward_and_merge(student):
    """LoRALinear: base(x) + x A^T B^T alpha / r; merge() once puts it in the weight; eval() merges, train() unmerges"""
    w, b, A, B, x = _layer_inputs()
    got = student.probe("lora_ops", weight=w, bias=b, A=A, B=B, r=2, alpha=6.0, x=x)
    what = "LoRALinear(nn.Linear(64, 4), r=2, alpha=6) with given A and B"
    checks = Checks()
    with checks.case("forward"):
        path = x @ A.T @ B.T
        expect_close(got["out"], F.linear(x, w, b) + 3.0 * path, f"{what}(x)", atol=1e-5,
                     hint=diagnose(got["out"], {"scaling is alpha / r, not alpha": F.linear(x, w, b) + 6.0 * path,
                                                "scaling is alpha / r, not r / alpha": F.linear(x, w, b) + path / 3},
                                   default="forward = base(x) + dropout(x) @ A^T @ B^T * (alpha / r)"))
    with checks.case("merge() and unmerge()"):
        merged = w + 3.0 * B @ A
        expect(got["merged"] is True, f"{what}.merged after merge()", f"is {got['merged']!r}")
        expect_close(got["merged_w"], merged, f"{what}.base.weight after merge()", atol=1e-5,
                     hint=diagnose(got["merged_w"], {"merge() forgot the scaling alpha / r": w + B @ A},
                                   default="W + (alpha / r) * B @ A, in place"))
        expect_close(got["merged_out"], got["out"], f"{what}(x) while merged", atol=1e-5,
                     hint="while merged, forward is base(x) only: the update is in the weight already")
        expect_close(got["merged_twice_w"], merged, f"{what}.base.weight after merge() twice", atol=1e-5,
                     hint=diagnose(got["merged_twice_w"], {"merge() must do nothing when the layer is already merged":
                                                           w + 6.0 * B @ A}))
        expect(got["unmerged"] is False, f"{what}.merged after unmerge()", f"is {got['unmerged']!r}")
        expect_close(got["unmerged_w"], w, f"{what}.base.weight after merge() then unmerge()", atol=1e-5,
                     hint=diagnose(got["unmerged_w"], {"unmerge() must subtract the update": w + 6.0 * B @ A}))
    with checks.case("eval() and train()"):
        expect(got["eval_merged"] is True, f"{what} after nn.Sequential(layer).eval()", "is not merged",
               hint=_bug("model.eval() calls train(False) on every submodule: override train(mode), not eval()"))
        expect(got["train_returns_self"] and got["train_merged"] is False, f"{what}.train()",
               "does not unmerge and return the layer", hint="train(mode) unmerges when mode is True and ends with `return self`")
    return checks


@graded(points=1)
def check_inject_lora(student):
    """inject_lora: the q and v projections of the tiny Llama become LoRALinear; names in named_modules order; ValueError"""
    got = student.probe("inject", targets=("v_proj", "q_proj"))
    grouped = {"the names must follow model.named_modules(), not the order of target_modules":
               [n for p in ("v_proj", "q_proj") for n in QV if n.endswith(p)],
               "the names must follow model.named_modules(), not be grouped by target":
               [n for p in ("q_proj", "v_proj") for n in QV if n.endswith(p)]}
    expect_equal(got["names"], QV, "inject_lora(tiny_llama(0), ('v_proj', 'q_proj'))",
                 hint=diagnose(got["names"], grouped, default="the dotted names of the replaced modules"))
    kinds = {n: k for n, k in got["kinds"].items() if not n.endswith(".base")}
    expect(all(kinds[n] == "LoRALinear" for n in QV) and all(k == "Linear" for n, k in kinds.items() if "k_proj" in n),
           "the modules after inject_lora(tiny_llama(0), ('v_proj', 'q_proj'))", f"are {kinds}",
           hint="replace exactly the nn.Linear children named in target_modules: setattr(parent, name, LoRALinear(...))")
    err = student.probe("inject_error", targets=("qproj",))
    expect(err == "ValueError", "inject_lora(tiny_llama(0), ('qproj',))", f"raised {err}" if err else "did not raise",
           hint="a target that matches nothing must raise ValueError")


@graded(points=1)
def check_trainable_and_count(student):
    """mark_only_lora_as_trainable and count_parameters on the tiny Llama with LoRA (r=4) on q and v: tied weights once"""
    got = student.probe("trainable_and_count")
    want = sorted(f"{n}.lora_{f}" for n in QV for f in "AB")
    expect_equal(got["trainable"], want, "the trainable parameters after mark_only_lora_as_trainable",
                 hint="True exactly for names ending in lora_A or lora_B (also ones that were frozen), False elsewhere")
    lora = 2 * (4 * 64 + 64 * 4) + 2 * (4 * 64 + 32 * 4)
    expect_equal(got["count"], (lora, 90432 + lora), "count_parameters(tiny Llama with LoRA on q, v)",
                 hint=diagnose(got["count"], {"the tied embedding / output weight was counted twice: model.parameters() "
                                              "lists each tensor once": (lora, 90432 + lora + 256 * 64),
                                              "the tuple is (trainable, total)": (90432 + lora, lora)}))


@graded(points=1)
def check_adapter_state(student):
    """lora_state_dict keeps only the factors as detached copies; load_lora_state_dict copies them in, strictly"""
    got = student.probe("adapter_round_trip")
    expect_equal(got["keys"], sorted(f"{n}.lora_{f}" for n in QV for f in "AB"), "the keys of lora_state_dict(model)",
                 hint="the names in model.state_dict() that end in lora_A or lora_B")
    expect(not got["requires_grad"] and not got["aliased"], "lora_state_dict(model)",
           "returns tensors that require grad or share memory with the model", hint="detached copies: .detach().clone()")
    expect(got["copied"] and got["embed_unchanged"], "load_lora_state_dict(other_model, state)",
           "did not copy every factor (or changed another weight)", hint="copy into each LoRA factor in place, under no_grad")
    want = {"missing": "KeyError", "unexpected": "KeyError", "shape": "ValueError"}
    expect_equal(got["errors"], want, "load_lora_state_dict with a missing factor / an unexpected name / a wrong shape",
                 hint="strict: KeyError for missing or unexpected names, ValueError for a shape that differs")


def _tokenizer_meta():
    from safetensors import safe_open

    from genai_course.data.sources import DataError, verified_artifact

    try:
        path = verified_artifact("smollm2")
    except DataError as e:
        raise Fail(f"the SmolLM2 tokenizer is not prepared on this machine ({str(e)[:200]}); run `genai-course data`") from None
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["genai_course"])
    return {"tokenizer": meta["tokenizer"], "tokenizer_config": meta["tokenizer_config"]}


@graded(points=1)
def check_build_sft_example(student):
    """build_sft_example: the chat template's tokens; labels on the assistant's words and <|im_end|> only; max_len"""
    from genai_course.models.llama import _tokenizer_from_meta

    meta = _tokenizer_meta()
    tok = _tokenizer_from_meta(meta)
    checks = Checks()
    conversations = {
        "user, assistant": ([{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello. How can I help?"}],
                            "Hello. How can I help?<|im_end|>"),
        "assistant first, two answers": ([{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Bye."},
                                          {"role": "assistant", "content": "See you."}], "Hi!<|im_end|>See you.<|im_end|>")}
    for label, (messages, trained_text) in conversations.items():
        with checks.case(label):
            got = student.probe("sft", meta=meta, messages=messages, max_len=512)
            what = f"build_sft_example(<{label}>, tokenizer, 512)"
            want_ids = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
            expect_equal(got["input_ids"].tolist(), want_ids, f"{what}['input_ids']",
                         hint="the tokens of tokenizer.apply_chat_template(messages, tokenize=False), default system message included")
            expect(got["labels"].shape == got["input_ids"].shape, f"{what}['labels']", "is not as long as input_ids")
            trained = tok.decode(got["input_ids"][got["labels"] != -100])
            last = trained_text.split("<|im_end|>")[-2] + "<|im_end|>"
            hint = diagnose(trained, {
                "labels include the assistant header '<|im_start|>assistant\\n': it is prompt, not answer":
                    "".join(f"<|im_start|>assistant\n{t}<|im_end|>" for t in trained_text.split("<|im_end|>")[:-1]),
                "labels must include the <|im_end|> that closes each answer, so the model learns to stop":
                    trained_text.replace("<|im_end|>", ""),
                "labels include the '\\n' after <|im_end|>": trained_text.replace("<|im_end|>", "<|im_end|>\n"),
                "train on every assistant message, not only the last": last},
                default="labels = input_ids on each assistant message's content and its <|im_end|>, -100 elsewhere")
            if "You are a helpful" in trained:
                hint = _bug("the default system message the template adds before an assistant-first conversation is not "
                            "the assistant's: split each assistant piece where its content starts")
            expect_equal(trained, trained_text, f"the tokens {what} trains on (decoded)", hint=hint)
            expect(bool((got["attention_mask"] == 1).all()) and got["input_ids"].dtype == torch.int64, f"{what}",
                   "attention_mask is not all ones or input_ids are not int64")
    with checks.case("max_len"):
        messages = conversations["user, assistant"][0]
        full = student.probe("sft", meta=meta, messages=messages, max_len=512)
        got = student.probe("sft", meta=meta, messages=messages, max_len=7)
        for key in ("input_ids", "labels", "attention_mask"):
            expect_equal(got[key].tolist(), full[key][:7].tolist(), f"build_sft_example(<user, assistant>, tokenizer, 7)[{key!r}]",
                         hint=diagnose(got[key].tolist(), {"truncate on the right: keep the first max_len tokens":
                                                           full[key][-7:].tolist()}))
    return checks


@graded(points=1)
def check_collate_sft(student):
    """collate_sft: right padding with pad_id, labels padded with -100, attention mask 0 on padding"""
    batch = [{"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([-100, 6, 7]), "attention_mask": torch.ones(3, dtype=torch.long)},
             {"input_ids": torch.tensor([9]), "labels": torch.tensor([9]), "attention_mask": torch.ones(1, dtype=torch.long)}]
    got = student.call("collate_sft", batch, 3)
    expect(isinstance(got, dict) and {"input_ids", "labels", "attention_mask"} <= set(got), "collate_sft(batch, pad_id=3)",
           f"returned {type(got).__name__}", hint='{"input_ids", "labels", "attention_mask"}')
    left = _bug("pad on the right: padding goes after the tokens")
    expect_equal(got["input_ids"], torch.tensor([[5, 6, 7], [9, 3, 3]]), "collate_sft(...)['input_ids']",
                 hint=diagnose(got["input_ids"], {"pad on the right: padding goes after the tokens": torch.tensor([[5, 6, 7], [3, 3, 9]])},
                               default="(B, L) int64 right-padded with pad_id"))
    expect_equal(got["labels"], torch.tensor([[-100, 6, 7], [9, -100, -100]]), "collate_sft(...)['labels']",
                 hint=diagnose(got["labels"], {"pad the labels with -100, not pad_id": torch.tensor([[-100, 6, 7], [9, 3, 3]]),
                                               "pad on the right: padding goes after the tokens": torch.tensor([[-100, 6, 7], [-100, -100, 9]])}))
    expect_equal(got["attention_mask"], torch.tensor([[1, 1, 1], [1, 0, 0]]), "collate_sft(...)['attention_mask']",
                 hint=diagnose(got["attention_mask"], {"the attention mask is 0 on padding": torch.ones(2, 3, dtype=torch.long),
                                                       "pad on the right: padding goes after the tokens": torch.tensor([[1, 1, 1], [0, 0, 1]])},
                               default=left))


@graded(points=1)
def check_extract_code(student):
    """extract_code: the first fenced block (python/py/bare), unclosed to the end, else everything; cut at <|im_end|>"""
    code = "def f(x):\n    return 2 * x"
    cases = [("Sure:\n```python\n" + code + "\n```\nDone.", code, {}),
             ("```py\n" + code + "\n```", code, {"accept ```py fences too": "```py\n" + code + "\n```"}),
             ("```\n" + code + "\n```", code, {}),
             ("```python\n" + code + "\n", code, {"an unclosed fence runs to the end of the text": ""}),
             (code + "\n<|im_end|>\n```python\nprint(1)\n```", code,
              {"cut at <|im_end|> first: what follows it is not the answer": "print(1)"}),
             ("A:\n```python\n" + code + "\n```\nB:\n```python\nprint(1)\n```", code,
              {"take the first block, not the last": "print(1)",
               "stop at the first closing ```": code + "\n```\nB:\n```python\nprint(1)"}),
             ("```python\n\n    return 2 * x\n\n```", "    return 2 * x",
              {"strip only leading and trailing newlines: the indentation is code": "return 2 * x"}),
             ("just words", "just words", {})]
    checks = Checks()
    for text, want, bugs in cases:
        with checks.case(repr(text[:40])):
            got = student.call("extract_code", text)
            expect_equal(got, want, f"extract_code({text[:40]!r}...)", hint=diagnose(got, bugs))
    return checks


@graded(points=1)
def check_pass_at_1(student):
    """pass_at_1: the fraction of completions whose program passes every assert; a looping one times out and fails"""
    tests = ["assert double(2) == 4", "assert double(-3) == -6"]
    correct = "Here:\n```python\ndef double(x):\n    return 2 * x\n```"
    checks = Checks()
    with checks.case("a correct completion and one that loops forever"):
        got = student.probe("pass_run", problems=[{"tests": tests}] * 2, timeout=1.0,
                            completions=[correct, "def double(x):\n    while True:\n        pass"])
        expect_close(got, 0.5, "pass_at_1(<correct, loops forever>, timeout=1)", atol=1e-9, hint=diagnose(got, {
            "the looping program must count as a failure: only status 'passed' passes": 1.0,
            "run extract_code(completion): the fenced answer is correct": 0.0}))
    with checks.case("correct, wrong on the second assert, crashing"):
        completions = [correct, "def double(x):\n    return x + 2", "def double(x):\n    return 2 * y"]
        got = student.probe("pass_run", problems=[{"tests": tests}] * 3, completions=completions, timeout=2.0)
        expect_close(got, 1 / 3, "pass_at_1(<correct, wrong on the second assert, crashing>, timeout=2)", atol=1e-9,
                     hint=diagnose(got, {"run every assert of the problem, joined with newlines": 2 / 3},
                                   default="program = extract_code(c) + '\\n\\n' + '\\n'.join(tests) + '\\n'; "
                                           "it passes when run_python(program, timeout=timeout).status == 'passed'"))
    with checks.case("lists of different lengths"):
        try:
            student.call("pass_at_1", [{"tests": tests}] * 2, [correct])
        except Exception as e:  # noqa: BLE001 - the student's error, with its message
            expect("ValueError" in str(e), "pass_at_1(2 problems, 1 completion)", f"raised {str(e)[:120]}",
                   hint="raise ValueError when the lists differ in length")
        else:
            raise Fail("pass_at_1(2 problems, 1 completion): did not raise\n    Hint: raise ValueError when the lists "
                       "differ in length")
    return checks
