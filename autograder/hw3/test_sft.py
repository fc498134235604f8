"""HW3 hidden suite, Part B: supervised fine-tuning examples with the real SmolLM2 tokenizer and chat template
(conversations drawn per submission: system prompts, several turns, the assistant first, a user last, an empty
answer, truncation inside a header and inside an answer), and batches.

The sandbox cannot read the data cache, so the tokenizer travels with the request (its JSON, about 2 MB) and
is rebuilt there exactly as the parent builds it (``genai_course.models.llama._tokenizer_from_meta``)."""
import json
from functools import lru_cache

import torch

from genai_course.grading import Checks, expect, expect_equal, graded, randint, reference
from genai_course.grading.api import diagnose
from genai_course.models.llama import _tokenizer_from_meta

ref = reference("hw3")
IGNORE = -100
HEAD, END = "<|im_start|>assistant\n", "<|im_end|>\n"
WORDS = ("the", "a", "river", "model", "python", "list", "sum", "café", "naïve", "weather", "tomorrow", "why", "how",
         "pizza", "42", "3.14", "hello", "world", "please", "thanks", "code", "function", "returns", "tokens", "über",
         "日本語", "🙂", "isn't", "x+y", "(a, b)", "[1, 2]", "{k: v}", "#tag", "e-mail", "—", "…", "Zürich", "loop")


@lru_cache(maxsize=1)
def _meta() -> dict:
    """The SmolLM2 tokenizer as data: what the probe needs to build it inside the sandbox."""
    from safetensors import safe_open

    from genai_course.data.sources import verified_artifact

    with safe_open(str(verified_artifact("smollm2")), framework="pt") as f:
        meta = json.loads(f.metadata()["genai_course"])
    return {"tokenizer": meta["tokenizer"], "tokenizer_config": meta["tokenizer_config"]}


@lru_cache(maxsize=1)
def _tok():
    return _tokenizer_from_meta(_meta())


def _text(g, lo=2, hi=14):
    """A message: words, numbers, unicode, punctuation, sometimes two lines; never starts with whitespace (the
    one place where tokenizing piece by piece and tokenizing the whole text may differ, and either is accepted)."""
    words = [WORDS[randint(g, 0, len(WORDS) - 1)] for _ in range(randint(g, lo, hi))]
    text = " ".join(words)
    text = text[0].upper() + text[1:] + (".", "?", "!", "")[randint(g, 0, 3)]
    if randint(g, 0, 3) == 0:
        text += ("\n", "\n\n")[randint(g, 0, 1)] + " ".join(WORDS[randint(g, 0, len(WORDS) - 1)] for _ in range(randint(g, 1, 5)))
    return text


def _answer(g):
    if randint(g, 0, 2) == 0:
        k = randint(g, 2, 9)
        return f"{_text(g, 1, 4)}\n```python\ndef scale(x):\n    return {k} * x\n```"
    return _text(g)


def _conversations(g) -> dict[str, list[dict]]:
    sys = lambda: {"role": "system", "content": _text(g)}  # noqa: E731
    user = lambda: {"role": "user", "content": _text(g)}  # noqa: E731
    bot = lambda: {"role": "assistant", "content": _answer(g)}  # noqa: E731
    return {"system, user, assistant": [sys(), user(), bot()],
            "user, assistant (the template adds its default system message)": [user(), bot()],
            "a system message and three turns": [sys(), user(), bot(), user(), bot(), user(), bot()],
            "the assistant speaks first": [bot(), user(), bot()],
            "the conversation ends with a user message": [user(), bot(), user()],
            "an empty assistant message, then another turn": [user(), {"role": "assistant", "content": ""}, user(), bot()]}


def _variant(messages, tok, header=False, im_end=True, newline=False, last_only=False):
    """Labels with a known bug, for naming it: the header trained, <|im_end|> not trained, the newline after it
    trained, or only the last assistant message trained."""
    labels, rendered = [], ""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    for i, m in enumerate(messages):
        text = tok.apply_chat_template(messages[:i + 1], tokenize=False)
        piece, rendered = text[len(rendered):], text
        if m["role"] != "assistant" or (last_only and i != last):
            labels += [IGNORE] * len(enc(piece))
            continue
        start = len(piece) - len(m["content"]) - len(END)
        for part, train in ((piece[:start - len(HEAD)], False), (HEAD, header), (m["content"], True),
                            ("<|im_end|>", im_end), ("\n", newline)):
            t = enc(part) if part else []
            labels += t if train else [IGNORE] * len(t)
    return torch.tensor(labels)


def _label_hint(got, messages, want):
    tok = _tok()
    shifted = torch.cat([want[1:], torch.tensor([IGNORE])])
    return diagnose(got, {"labels include the '<|im_start|>assistant\\n' header: it is prompt, not answer":
                          _variant(messages, tok, header=True),
                          "labels must include the <|im_end|> that closes each assistant message (so the model learns to stop)":
                          _variant(messages, tok, im_end=False),
                          "labels include the '\\n' after <|im_end|>": _variant(messages, tok, newline=True),
                          "only the last assistant message is trained: train on every assistant message":
                          _variant(messages, tok, last_only=True),
                          "labels are shifted by one: keep labels aligned with input_ids (the model shifts them itself)": shifted},
                    default="labels = input_ids on each assistant message's content and its <|im_end|>, -100 elsewhere")


def _sft(student, cases):
    return student.probe("sft_examples", meta=_meta(), cases=cases)


def _expect_example(got, what):
    expect("error" not in got, what, f"raised {got.get('error', '')}")
    for key in ("input_ids", "labels", "attention_mask"):
        expect(isinstance(got.get(key), torch.Tensor), what, f"[{key!r}] is {type(got.get(key)).__name__}, not a tensor",
               hint='return {"input_ids": ..., "labels": ..., "attention_mask": ...}, 1-D int64 tensors')


@graded(points=2, timeout=30)
def test_sft_input_ids(student):
    """build_sft_example: input_ids are exactly the chat template's tokens, with an all-ones attention mask, 1-D int64"""
    g = student.rng()
    checks = Checks()
    convs = _conversations(g)
    names = ["system, user, assistant", "user, assistant (the template adds its default system message)",
             "the assistant speaks first", "the conversation ends with a user message"]
    got_all = _sft(student, [(convs[n], 10_000) for n in names])
    tok = _tok()
    for name, got in zip(names, got_all):
        with checks.case(name):
            messages = convs[name]
            what = f"build_sft_example(<{name}: {len(messages)} messages>, tokenizer, max_len=10000)"
            _expect_example(got, what)
            text = tok.apply_chat_template(messages, tokenize=False)
            want = ref.build_sft_example(messages, tok, 10_000)
            plain = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            enc = lambda t: torch.tensor(tok(t, add_special_tokens=False)["input_ids"])  # noqa: E731
            expect_equal(got["input_ids"], want["input_ids"], f"{what}['input_ids']", hint=diagnose(got["input_ids"], {
                "the template's default system message is missing: render with tokenizer.apply_chat_template": enc(plain),
                "no generation prompt: this is a whole conversation, not a prompt": enc(prompt)},
                default=f"the tokens of tokenizer.apply_chat_template(messages, tokenize=False) ({len(text)} characters)"))
            expect_equal(got["attention_mask"], want["attention_mask"], f"{what}['attention_mask']",
                         hint="all ones, int64, as long as input_ids")
            expect(got["labels"].shape == got["input_ids"].shape and got["labels"].dtype == torch.int64,
                   f"{what}['labels']", f"has shape {tuple(got['labels'].shape)} and dtype {got['labels'].dtype}",
                   hint="1-D int64, as long as input_ids")
    return checks


@graded(points=3, timeout=30)
def test_sft_labels(student):
    """build_sft_example: labels are the assistant messages' tokens and their <|im_end|>, -100 everywhere else"""
    g = student.rng()
    checks = Checks()
    convs = _conversations(g)
    got_all = _sft(student, [(m, 10_000) for m in convs.values()])
    tok = _tok()
    for (name, messages), got in zip(convs.items(), got_all):
        with checks.case(name):
            what = f"build_sft_example(<{name}: {len(messages)} messages>, tokenizer, max_len=10000)['labels']"
            _expect_example(got, what)
            want = ref.build_sft_example(messages, tok, 10_000)["labels"]
            labels = got["labels"].long() if not got["labels"].is_floating_point() else got["labels"]
            expect_equal(labels, want, what, hint=_label_hint(labels, messages, want))
    return checks


@graded(points=2, timeout=30)
def test_sft_truncation(student):
    """build_sft_example: max_len keeps the first max_len tokens of input_ids, labels and attention_mask alike"""
    g = student.rng()
    checks = Checks()
    convs = _conversations(g)
    messages = convs["a system message and three turns"]
    tok = _tok()
    full = ref.build_sft_example(messages, tok, 10_000)
    L = len(full["input_ids"])
    trained = (full["labels"] != IGNORE).nonzero().flatten().tolist()
    first = trained[0]
    cuts = {"inside the first assistant message": first + randint(g, 1, 2),
            "inside the assistant header before it": first - randint(g, 1, 2),
            "inside the system message": randint(g, 2, 5),
            "exactly the length": L,
            "longer than the conversation": L + randint(g, 1, 20)}
    got_all = _sft(student, [(messages, 10_000)] + [(messages, m) for m in cuts.values()])
    whole, got_all = got_all[0], got_all[1:]
    what = f"build_sft_example(<a system message and three turns: {L} tokens>, tokenizer, max_len=10000)"
    with checks.case("the untruncated example has the conversation's length"):
        _expect_example(whole, what)
        expect(len(whole["input_ids"]) == L, what, f"has {len(whole['input_ids'])} tokens, expected {L}",
               hint="see the input_ids test")
    if "error" in whole or len(whole["input_ids"]) != L:
        return checks
    for (where, m), got in zip(cuts.items(), got_all):
        with checks.case(f"max_len={m}: {where}"):
            what_m = f"build_sft_example(<a conversation of {L} tokens>, tokenizer, max_len={m}) (cut {where})"
            _expect_example(got, what_m)
            for key in ("input_ids", "labels", "attention_mask"):
                expect_equal(got[key].tolist(), whole[key][:m].tolist(), f"{what_m}[{key!r}]",
                             hint=diagnose(got[key].tolist(), {"truncate on the right: keep the FIRST max_len tokens":
                                                               whole[key][-m:].tolist(),
                                                               "off by one: keep max_len tokens, not max_len - 1":
                                                               whole[key][:m - 1].tolist()},
                                           default="slice input_ids, labels and attention_mask alike: [:max_len]"))
    return checks


# ---- B.2 collate_sft ---------------------------------------------------------------------------------------------

def _example(g, n):
    ids = torch.randint(0, 49152, (n,), generator=g)
    labels = torch.where(torch.rand(n, generator=g) < 0.5, ids, torch.full_like(ids, IGNORE))
    return {"input_ids": ids, "labels": labels, "attention_mask": torch.ones(n, dtype=torch.long)}


@graded(points=3, timeout=20)
def test_collate_sft(student):
    """collate_sft: right padding with pad_id, labels padded with -100, attention mask 0 on padding, int64"""
    g = student.rng()
    checks = Checks()
    lengths = torch.randperm(14, generator=g)[:4] + 1
    cases = {"4 examples of different lengths": ([_example(g, int(n)) for n in lengths], randint(g, 3, 49151)),
             "3 examples of equal length (no padding)": ([_example(g, 7) for _ in range(3)], 2),
             "one example": ([_example(g, randint(g, 1, 9))], randint(g, 3, 49151)),
             "2 examples, pad_id 0": ([_example(g, 3), _example(g, 8)], 0)}
    for label, (batch, pad_id) in cases.items():
        with checks.case(f"{label}, pad_id={pad_id}"):
            got = student.call("collate_sft", batch, pad_id)
            want = ref.collate_sft(batch, pad_id)
            what = f"collate_sft(<{label}: lengths {[len(b['input_ids']) for b in batch]}>, pad_id={pad_id})"
            expect(isinstance(got, dict) and set(got) == set(want), what,
                   f"returned {type(got).__name__} {sorted(got) if isinstance(got, dict) else ''}",
                   hint='{"input_ids", "labels", "attention_mask"}, each (B, L)')
            L = want["input_ids"].shape[1]
            left = {key: torch.stack([torch.cat([torch.full((L - len(b[key]),), pad, dtype=torch.long), b[key]]) for b in batch])
                    for key, pad in (("input_ids", pad_id), ("labels", IGNORE), ("attention_mask", 0))}
            expect_equal(got["input_ids"], want["input_ids"], f"{what}['input_ids']", hint=diagnose(got["input_ids"], {
                "pad on the right: padding goes after the tokens": left["input_ids"]},
                default="(B, L) int64, L the longest example, right-padded with the pad_id argument"))
            expect_equal(got["labels"], want["labels"], f"{what}['labels']", hint=diagnose(got["labels"], {
                "pad on the right: padding goes after the tokens": left["labels"],
                "labels are padded with -100 (IGNORE_INDEX), not pad_id": want["input_ids"].where(want["attention_mask"] == 0, want["labels"])},
                default="right-padded with -100 so padding never counts in the loss"))
            expect_equal(got["attention_mask"], want["attention_mask"], f"{what}['attention_mask']", hint=diagnose(
                got["attention_mask"], {"pad on the right: padding goes after the tokens": left["attention_mask"],
                                        "the attention mask is 0 on padding": torch.ones_like(want["attention_mask"])},
                default="1 on real tokens, 0 on padding, int64"))
    return checks
