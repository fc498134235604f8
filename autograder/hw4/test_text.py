"""HW4 hidden suite, Part A: encoding prompts with the real all-MiniLM-L6-v2 tokenizer and a tiny BERT with
seeded random weights (the reference, called with the same tokenizer and model, is the oracle), the null
condition, and guidance dropout under a seeded generator (exactly the reference's draw).

The sandbox cannot read the data cache, so the tokenizer travels with the request (its JSON, about 0.5 MB) and
is rebuilt there exactly as the parent builds it (``genai_course.models.minilm._tokenizer_from_meta``)."""
import math
import threading
from functools import lru_cache

import torch

from genai_course.grading import Checks, expect, expect_close, expect_equal, graded, randint, reference, suite_probes
from genai_course.grading.api import diagnose

ref = reference("hw4")
WORDS = ("a", "red", "green", "blue", "yellow", "digit", "3", "7", "0", "in", "the", "top", "bottom", "left", "right",
         "seven", "zero", "café", "naïve", "Zürich", "🙂", "isn't", "x+y", "(a, b)", "—", "…", "corner", "middle",
         "tiny", "bright", "handwritten", "number", "two", "pale", "at", "of", "image", "canvas", "42", "3.14")


P = suite_probes(__file__)


@lru_cache(maxsize=1)
def _meta() -> dict:
    """The all-MiniLM-L6-v2 tokenizer as data: what the probe needs to build it inside the sandbox."""
    from genai_course.models.minilm import _meta as minilm_meta

    meta = minilm_meta()[1]
    return {"tokenizer": meta["tokenizer"], "tokenizer_config": meta["tokenizer_config"]}


_LOCAL = threading.local()


def _tok():
    """The tokenizer, one per thread: a fast tokenizer keeps its padding and truncation settings as state, and the
    grader grades several submissions at once in threads (a shared one cut one test's prompts at another's max_len)."""
    if getattr(_LOCAL, "tok", None) is None:
        _LOCAL.tok = P._tokenizer(_meta())
    return _LOCAL.tok


def _prompt(g, lo=1, hi=7):
    return " ".join(WORDS[randint(g, 0, len(WORDS) - 1)] for _ in range(randint(g, lo, hi)))


def _n_tokens(prompt):
    return len(_tok()(prompt)["input_ids"])


# ---- A.1 encode_prompts ------------------------------------------------------------------------------------------

@graded(points=3, timeout=30)
def test_encode_prompts(student):
    """encode_prompts: the reference's padded token states and bool mask; padding-independent, truncated at max_len, float32, no grad"""
    g = student.rng()
    checks = Checks()
    seed = randint(g, 0, 10_000)
    short = _prompt(g, 1, 2)
    longer = _prompt(g, 8, 12)
    long_ones = [_prompt(g, 25, 32) for _ in range(2)]
    k = randint(g, 5, 9)
    cases = [("a batch of 4 prompts of different lengths", [_prompt(g) for _ in range(4)], 64, "float32"),
             ("one short prompt alone", [short], 64, "float32"),
             ("the same prompt batched with a longer one", [short, longer], 64, "float32"),
             (f"max_len={k} cuts the long prompts ([CLS] and [SEP] included)", [long_ones[0], _prompt(g, 1, 2), long_ones[1]], k,
              "float32"),
             ("prompts of more than 24 tokens with the default max_len", [long_ones[1], _prompt(g, 2, 5)], None, "float32"),
             ("a float64 text model", [_prompt(g), _prompt(g)], 64, "float64")]
    got_all = student.probe("encode_cases", meta=_meta(), seed=seed,
                            cases=[{"prompts": p, "max_len": m, "dtype": d} for _, p, m, d in cases])
    tok = _tok()
    results = {}
    for (label, prompts, max_len, dtype), got in zip(cases, got_all):
        model = P._text_model(seed, dtype)
        want_h, want_m = ref.encode_prompts(prompts, tok, model, **({} if max_len is None else {"max_len": max_len}))
        lengths = [min(_n_tokens(p), 24 if max_len is None else max_len) for p in prompts]
        what = (f"encode_prompts(<{len(prompts)} prompt(s) of {[_n_tokens(p) for p in prompts]} tokens>, tokenizer, "
                f"<tiny BERT, {dtype}>" + (")" if max_len is None else f", max_len={max_len})"))
        results[label] = got
        with checks.case(label):
            expect("error" not in got, what, f"raised {got.get('error', '')}")
            mask = got["mask"]
            expect_equal(mask, want_m, f"{what}: the mask", hint=diagnose(mask, {
                "the mask must be bool (True on real tokens): attention_mask.bool()": want_m.long(),
                "truncate at max_len: tokenizer(..., truncation=True, max_length=max_len)":
                    torch.tensor([[True] * n + [False] * (max(map(_n_tokens, prompts)) - n) for n in map(_n_tokens, prompts)])},
                default=f"(B, L) bool, L = the longest tokenised prompt (here {max(lengths)}), True on real tokens"))
            expect(got["hidden"].dtype == torch.float32, f"{what}: hidden", f"has dtype {got['hidden'].dtype}",
                   hint="return the last hidden states as float32: .float()")
            expect_close(got["hidden"], want_h, f"{what}: hidden", atol=1e-4, rtol=1e-4,
                         hint="text_model(input_ids=..., attention_mask=...).last_hidden_state: without the attention "
                              "mask, real tokens attend to the padding")
            expect(not got["requires_grad"], f"{what}: hidden", "carries a gradient graph into the text model",
                   hint="no gradients flow into the frozen text encoder: @torch.no_grad() (or torch.no_grad())")
    alone, batched = results["one short prompt alone"], results["the same prompt batched with a longer one"]
    with checks.case("a prompt's states do not depend on the padding it gets"):
        what = (f"encode_prompts([<a prompt of {_n_tokens(short)} tokens>, <one of {_n_tokens(longer)}>]) against "
                "encode_prompts([<the first alone>])")
        expect("error" not in alone and "error" not in batched, what,
               f"raised {alone.get('error') or batched.get('error')}")
        expect(alone["hidden"].dim() == 3 and batched["hidden"].dim() == 3
               and batched["hidden"].shape[1] >= alone["hidden"].shape[1], what,
               f"the hidden states have shapes {tuple(alone['hidden'].shape)} and {tuple(batched['hidden'].shape)}",
               hint="(B, L, hidden_size), L = the longest tokenised prompt")
        n = alone["hidden"].shape[1]
        expect_close(batched["hidden"][0, :n], alone["hidden"][0], f"{what}: the states of its {n} real tokens",
                     atol=1e-4, rtol=1e-4, hint="pass attention_mask to the text model so real tokens never attend to padding")
    return checks


# ---- A.2 null_condition and drop_condition ------------------------------------------------------------------------

def _cond(g, B, L, D, dtype=torch.float32):
    hidden = torch.randn(B, L, D, generator=g, dtype=dtype)
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    lengths[0] = L
    mask = torch.arange(L)[None] < lengths[:, None]
    return hidden * mask[..., None], mask


def _dropped(hidden, mask, drop):
    """What drop_condition returns when exactly the examples in ``drop`` are dropped."""
    null_h, null_m = ref.null_condition(hidden, mask)
    return [torch.where(drop[:, None, None], null_h, hidden), torch.where(drop[:, None], null_m, mask)]


@graded(points=1, timeout=15)
def test_null_condition(student):
    """null_condition: zero states shaped like hidden (dtype kept), a bool mask True at position 0 only; inputs untouched"""
    g = student.rng()
    checks = Checks()
    for dtype in (torch.float32, torch.float64):
        B, L, D = randint(g, 2, 6), randint(g, 3, 9), randint(g, 4, 12)
        with checks.case(f"hidden {(B, L, D)} {str(dtype)[6:]}"):
            hidden, mask = _cond(g, B, L, D, dtype)
            got = student.probe("null_cond", hidden=hidden, mask=mask)
            want_h, want_m = ref.null_condition(hidden, mask)
            what = f"null_condition(hidden {(B, L, D)} {str(dtype)[6:]}, mask {(B, L)})"
            out = got["out"]
            expect(isinstance(out, (list, tuple)) and len(out) == 2, what, f"returned {type(out).__name__}, not a pair",
                   hint="return (null_hidden, null_mask)")
            expect_equal(out[0], want_h, f"{what}: null_hidden", hint="torch.zeros_like(hidden): same shape, dtype, device")
            expect_equal(out[1], want_m, f"{what}: null_mask", hint=diagnose(out[1], {
                "exactly one valid position: an all-False mask makes every attention softmax 0/0 = NaN":
                    torch.zeros_like(want_m),
                "the null mask has the input's shape (B, L), not (B, 1)": want_m[:, :1]},
                default="a (B, L) bool mask, True at position 0 only"))
            expect(got["inputs_unchanged"], what, "modified its inputs", hint="build new tensors; never write into hidden or mask")
    return checks


@graded(points=2, timeout=20)
def test_drop_condition(student):
    """drop_condition: exactly the reference's draw under a generator (p = 0, 1, 0.3, another p), a fraction p dropped, inputs untouched"""
    g = student.rng()
    checks = Checks()
    p_other = (0.15, 0.5, 0.7)[randint(g, 0, 2)]
    cases = [("p=0 keeps every example", 0.0, (randint(g, 3, 6), 5, 4), randint(g, 0, 2**31)),
             ("p=1 drops every example", 1.0, (randint(g, 3, 6), 5, 4), randint(g, 0, 2**31)),
             ("p=0.3 on 2000 examples", 0.3, (2000, 3, 2), randint(g, 0, 2**31)),
             (f"p={p_other} on 24 examples", p_other, (24, randint(g, 4, 8), randint(g, 3, 8)), randint(g, 0, 2**31))]
    for label, p, (B, L, D), seed in cases:
        with checks.case(label):
            hidden, mask = _cond(g, B, L, D)
            got = student.probe("drop", hidden=hidden, mask=mask, p=p, seed=seed)
            gen = torch.Generator().manual_seed(seed)
            want_h, want_m = ref.drop_condition(hidden, mask, p, gen)
            want_next = torch.rand(4, generator=gen)
            what = f"drop_condition(hidden {(B, L, D)}, mask {(B, L)}, p={p:g}, generator)"
            out = got["out"]
            expect(isinstance(out, (list, tuple)) and len(out) == 2, what, f"returned {type(out).__name__}, not a pair",
                   hint="return (hidden', mask')")
            expect(got["inputs_unchanged"], what, "modified its inputs",
                   hint="build new tensors (torch.where); never write into hidden or mask")
            h, m = out
            expect(isinstance(h, torch.Tensor) and tuple(h.shape) == (B, L, D) and isinstance(m, torch.Tensor)
                   and tuple(m.shape) == (B, L), what, "did not return tensors shaped like its inputs",
                   hint="hidden' (B, L, D), mask' (B, L)")
            frac_want = float(((want_h != hidden).flatten(1).any(1) | (want_m != mask).any(1)).float().mean())
            frac = float(((h != hidden).flatten(1).any(1) | (m != mask).any(1)).float().mean())
            u = torch.rand(B, generator=torch.Generator().manual_seed(seed))
            hint = diagnose([h, m], {
                "an example is dropped when u < p (this dropped it with probability 1 - p)": _dropped(hidden, mask, u >= p),
                "a dropped example gets null_condition's mask too (True at position 0 only), not an all-False one":
                    [want_h, torch.where((u < p)[:, None], torch.zeros_like(mask), mask)]},
                default="u = torch.rand(B, generator=generator, device=hidden.device) once; example i becomes "
                        "null_condition's when u[i] < p")
            expect_equal(m.bool(), want_m, f"{what}: mask' (dropped {frac:.1%} of the examples, the reference "
                         f"{frac_want:.1%})", hint=hint)
            expect_equal(h, want_h, f"{what}: hidden'", hint=hint)
            if 0 < p < 1:
                expect_equal(got["next"], want_next, f"what the generator draws after {what}",
                             hint="draw exactly once from the generator: torch.rand(B, generator=generator, ...)")
    with checks.case("no generator: a fraction p of 1000 examples is dropped"):
        p = (0.2, 0.5)[randint(g, 0, 1)]
        hidden, mask = _cond(g, 1000, 3, 2)
        got = student.probe("drop", hidden=hidden, mask=mask, p=p, seed=None)
        what = f"drop_condition(hidden (1000, 3, 2), mask (1000, 3), p={p:g})"
        expect(isinstance(got["out"], (list, tuple)) and len(got["out"]) == 2
               and all(isinstance(v, torch.Tensor) for v in got["out"]), what,
               f"returned {type(got['out']).__name__}, not a pair of tensors", hint="return (hidden', mask')")
        h, m = got["out"]
        expect(h.shape == hidden.shape and m.shape == mask.shape, what, "did not return tensors shaped like its inputs",
               hint="hidden' (B, L, D), mask' (B, L)")
        nul_h, nul_m = ref.null_condition(hidden, mask)
        is_null = (h == nul_h).flatten(1).all(1) & (m == nul_m).all(1)
        is_kept = (h == hidden).flatten(1).all(1) & (m == mask).all(1)
        expect(bool((is_null | is_kept).all()), what, "returned examples that are neither kept nor null_condition's",
               hint="torch.where(drop[:, None, None], null_hidden, hidden) and the same for the mask")
        frac, sd = float(is_null.float().mean()), math.sqrt(p * (1 - p) / 1000)
        expect(abs(frac - p) <= 5 * sd, what, f"dropped {frac:.1%} of the examples, expected about {p:.0%}",
               hint="example i is dropped when u[i] < p, u = torch.rand(B, generator=generator, device=hidden.device)")
    return checks
