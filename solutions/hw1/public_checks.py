"""Public checks of HW1, run by `genai-course check hw1.ipynb`: one or more per graded definition,
on small inputs. When a result is wrong, the check also computes what the common buggy versions
would return on the same input and names the bug your output matches. The hidden suite tests other
inputs, memory, sampling statistics and a training run."""
import math

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, expect, expect_close, expect_equal, expect_shape, graded
from genai_course.grading.api import diagnose


def _window(T, w):
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return (j <= i) & (j > i - w)


@graded(points=1)
def check_tokenizer(student):
    """CharTokenizer: sorted vocabulary, encode, decode of a list and of a tensor"""
    got = student.probe("tokenizer", text="hello world", probe="hello")
    expect_equal(got["vocab_size"], 8, "CharTokenizer('hello world').vocab_size",
                 hint=diagnose(got["vocab_size"], {"vocab_size counts every character, not the distinct ones": 11}))
    expect_equal(got["ids"], [3, 2, 4, 4, 5], "encode('hello')",
                 hint=diagnose(got["ids"], {"the vocabulary is in order of first appearance; sort it: sorted(set(text))":
                                            [0, 1, 2, 2, 3]}, default="id i is the i-th character of sorted(set(text))"))
    expect_equal(got["decoded"], "hello", "decode(encode('hello'))")
    expect_equal(got["decoded_tensor"], "hello", "decode(torch.tensor(encode('hello')))",
                 hint="decode must accept a 1-D LongTensor too: int(i) for each element")


@graded(points=1)
def check_mask(student):
    """sliding_window_mask(4, 2) and window >= T"""
    checks = Checks()
    for T, w in [(4, 2), (5, 9), (3, 1)]:
        with checks.case(f"T={T}, window={w}"):
            got = student.call("sliding_window_mask", T, w)
            i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
            expect_equal(got, _window(T, w), f"sliding_window_mask({T}, {w})", hint=diagnose(got, {
                "values are right but the dtype must be torch.bool": _window(T, w),
                "off by one: each query sees window + 1 keys (use j > i - window, not j >= i - window)":
                    (j <= i) & (j >= i - w),
                "off by one: each query sees only window - 1 keys (a query always sees itself)": (j <= i) & (j > i - w + 1),
                "a query may not see itself: use j <= i, not j < i": (j < i) & (j > i - w),
                "the window is missing: that is the plain causal mask": j <= i,
                "the mask is transposed: rows are queries, columns keys": ((j <= i) & (j > i - w)).T,
                "True must mean 'may attend': the mask is inverted": ~((j <= i) & (j > i - w)),
            }, default="True iff i - window < j <= i (bool dtype)"))
    return checks


def _attention_variants(q, k, v, m):
    """What scaled_dot_product_attention returns with each common bug, on (q, k, v, mask m)."""
    d = q.shape[-1]
    raw = q @ k.transpose(-2, -1)
    def attend(scores, mask=m, dim=-1, zero_empty=True, fill=float("-inf")):
        w = torch.softmax(scores.masked_fill(~mask, fill), dim=dim)
        if zero_empty:
            w = w.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
        return w @ v
    return {
        "scaled the scores by 1/d instead of 1/sqrt(d)": attend(raw / d),
        "forgot to scale the scores by 1/sqrt(d)": attend(raw),
        "softmax over the wrong axis (the queries, dim=-2); normalise over the keys, dim=-1": attend(raw / math.sqrt(d), dim=-2),
        "the mask is inverted: True means 'may attend', so fill where the mask is False (~mask)": attend(raw / math.sqrt(d), mask=~m),
        "rows with no allowed key are not zeroed (they come out as NaN)": attend(raw / math.sqrt(d), zero_empty=False),
        "rows with no allowed key are not zeroed (a finite fill value gives them the mean of v)":
            attend(raw / math.sqrt(d), zero_empty=False, fill=-1e9),
    }


@graded(points=1)
def check_attention(student):
    """scaled_dot_product_attention: agrees with torch; a row with no allowed key returns zeros"""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 10, 8, generator=g) for _ in range(3))
    m = _window(10, 4)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    got = student.call("scaled_dot_product_attention", q, k, v, m)
    expect_close(got, want, "scaled_dot_product_attention(q (1, 2, 10, 8), ..., sliding_window_mask(10, 4))", atol=1e-5,
                 hint=diagnose(got, _attention_variants(q, k, v, m)))
    empty = m.clone()
    empty[0] = False  # query 0 may attend no key at all
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=empty).masked_fill(~empty.any(-1, keepdim=True), 0.0)
    got = student.call("scaled_dot_product_attention", q, k, v, empty)
    expect_close(got, want, "scaled_dot_product_attention with query 0 fully masked", atol=1e-5,
                 hint=diagnose(got, _attention_variants(q, k, v, empty), default="zero the rows with no allowed key"))


@graded(points=1)
def check_banded(student):
    """banded_attention equals dense masked attention (T not a multiple of w, w >= T, w = 1)"""
    checks = Checks()
    g = torch.Generator().manual_seed(1)
    for T, w in [(10, 4), (16, 4), (7, 20), (9, 1)]:
        with checks.case(f"T={T}, window={w}"):
            q, k, v = (torch.randn(1, 2, T, 8, generator=g) for _ in range(3))
            got = student.call("banded_attention", q, k, v, w)
            dense = lambda mask, scale=None: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
            expect_close(got, dense(_window(T, w)), f"banded_attention(q (1, 2, {T}, 8), window={w})", atol=1e-5,
                         hint=diagnose(got, {
                             "each query sees window + 1 keys: the band is off by one": dense(_window(T, w + 1)),
                             "each query sees only window - 1 keys: the band is off by one": dense(_window(T, max(w - 1, 1))),
                             "the window is ignored (plain causal attention)": dense(_window(T, T)),
                             "the scores are not scaled by 1/sqrt(d)": dense(_window(T, w), scale=1.0),
                         }, default="pad T to a multiple of the window; block 0 has no previous block "
                                    "(its zero padding must be masked, not attended with score 0)"))
    return checks


def _rope(x, pos, base=10000.0, interleaved=True, exponent=2.0, sign=1.0):
    D = x.shape[-1]
    inv = base ** (-exponent * torch.arange(D // 2, dtype=torch.float32) / D)
    ang = pos.float()[:, None] * inv[None, :]
    cos, sin = ang.cos(), sign * ang.sin()
    x1, x2 = (x[..., 0::2], x[..., 1::2]) if interleaved else (x[..., : D // 2], x[..., D // 2:])
    a, b = x1 * cos - x2 * sin, x1 * sin + x2 * cos
    return torch.stack([a, b], dim=-1).flatten(-2) if interleaved else torch.cat([a, b], dim=-1)


@graded(points=1)
def check_rope(student):
    """RotaryEmbedding: the rotation of the docstring, norms preserved, position 0 unchanged"""
    g = torch.Generator().manual_seed(2)
    x, pos = torch.randn(2, 5, 8, generator=g), torch.tensor([0, 1, 2, 7, 30])
    got = student.probe("rope_apply", head_dim=8, base=10000.0, x=x, positions=pos)
    expect_shape(got, (2, 5, 8), "RotaryEmbedding(8)(x (2, 5, 8), positions)")
    expect_close(got.norm(dim=-1), x.norm(dim=-1), "norms after RoPE (a rotation keeps them)", atol=1e-5,
                 hint="rotate each pair (x[2m], x[2m+1]) by the same angle: cos on both, -sin / +sin")
    expect_close(got, _rope(x, pos), "RotaryEmbedding(8)(x, positions)", atol=1e-5, hint=diagnose(got, {
        "pairs are the two halves (x[m], x[m + D/2]); this homework pairs neighbours (x[2m], x[2m+1])": _rope(x, pos, interleaved=False),
        "frequencies base ** (-m / D): the exponent is -2m / D": _rope(x, pos, exponent=1.0),
        "rotation in the wrong direction: out[2m] = x[2m] cos - x[2m+1] sin": _rope(x, pos, sign=-1.0),
    }, default="interleaved pairs (0,1), (2,3), ...; theta_m = base ** (-2m / D)"))


@graded(points=1)
def check_attention_layer(student):
    """MultiHeadSelfAttention: GQA equals MHA with each kv head repeated for its group"""
    got = student.probe("gqa_vs_mha")
    expect_shape(got["gqa"], (2, 9, 32), "MultiHeadSelfAttention(32, n_heads=4, window=3, n_kv_heads=2) on x (2, 9, 32)")
    expect_close(got["gqa"], got["mha_interleave"], "GQA layer vs the same layer with kv heads repeated (repeat_interleave)",
                 atol=1e-5, hint=diagnose(got["gqa"], {
                     "kv heads repeated with .repeat (head h uses kv head h % n_kv_heads); use repeat_interleave "
                     "(head h uses kv head h // (n_heads // n_kv_heads))": got["mha_repeat"],
                 }, default="RoPE on q and k, then repeat_interleave the kv heads along dim 1"))


@graded(points=1)
def check_cache(student):
    """RollingKVCache: cached attention equals the full forward; `window` slots; device and dtype"""
    got = student.probe("layer_cached_vs_full")
    expect_shape(got["full"], (2, 13, 32), "MultiHeadSelfAttention output")
    expect_close(got["inc"], got["full"], "attention fed through a RollingKVCache (a 6-token prompt, then 1 token at a "
                 "time) vs the full forward", atol=1e-5,
                 hint="positions continue from cache.seen; rotate q and k, then cache.update(k, v); mask keys by absolute position "
                      "(the cached path calls your scaled_dot_product_attention: make its check pass first)")
    expect_equal(got["cache_k_shape"], [2, 2, 5, 8], "RollingKVCache(5, 2, 2, 8).k.shape after 13 tokens",
                 hint="the buffer has exactly `window` slots; write position p to slot p % window")
    expect_equal(got["meta"], ["meta", "torch.float64", "meta", "torch.int64"],
                 "RollingKVCache(..., device='meta', dtype=torch.float64): [k.device, k.dtype, pos.device, pos.dtype]",
                 hint="create k, v with device=device, dtype=dtype and pos with device=device (pos stays int64)")


@graded(points=1)
def check_model(student):
    """TransformerLM: logits shape, tied lm_head, causality, cached = uncached, new_cache dtype, greedy generate"""
    got = student.probe("lm_outputs")
    expect_shape(got["logits"], (2, 11, 20), "TransformerLM logits for idx (2, 11), vocab 20")
    if got["no_final_norm"] is not None and diagnose(got["logits"], {"": got["final_norm"]}) is None:
        bug = diagnose(got["logits"], {"the final LayerNorm ln_f is not applied before lm_head": got["no_final_norm"]})
        expect(bug is None, "TransformerLM", "logits come straight from the last block", hint=bug)
    expect(got["tied"], "TransformerLM", "lm_head.weight is not tok_emb.weight", hint="self.lm_head.weight = self.tok_emb.weight")
    expect_close(got["changed"][:, :7], got["logits"][:, :7], "logits of positions 0..6 after changing tokens 7..10",
                 atol=1e-5, hint="a token must never see the future: causal masking in every layer")
    expect_close(got["cached"], got["logits"], "logits through new_cache (5-token prompt, then 1 token at a time) vs uncached",
                 atol=1e-4, hint="every block gets its own cache: cache[i] for block i (make the RollingKVCache check pass first)")
    expect_equal(got["new_cache_dtype"], ["torch.float64", "torch.float64"],
                 "dtype of new_cache(1)[0].k and .v for a model converted to float64",
                 hint="new_cache passes the device and dtype of the model's weights to RollingKVCache")
    expect_equal(got["generated"], got["recomputed"], "generate(temperature=0) vs greedy recomputation of the whole prefix",
                 hint="create the cache once with model.new_cache(B), feed it the prompt, then ONE new token per step "
                      "through the same cache")


@graded(points=1)
def check_lm_loss(student):
    """lm_loss: mean next-token cross-entropy over all positions"""
    g = torch.Generator().manual_seed(3)
    logits, targets = torch.randn(2, 5, 7, generator=g), torch.randint(0, 7, (2, 5), generator=g)
    got = student.call("lm_loss", logits, targets)
    flat, y = logits.reshape(-1, 7), targets.reshape(-1)
    expect_close(got, F.cross_entropy(flat, y), "lm_loss(logits (2, 5, 7), targets (2, 5))", atol=1e-5,
                 hint=diagnose(got, {
                     "summed over positions instead of averaged (reduction='mean')": F.cross_entropy(flat, y, reduction="sum"),
                     "softmax applied before cross_entropy, which already contains log-softmax":
                         F.cross_entropy(flat.softmax(-1), y),
                     "targets shifted again: the targets are already the next tokens":
                         F.cross_entropy(logits[:, :-1].reshape(-1, 7), targets[:, 1:].reshape(-1)),
                 }, default="F.cross_entropy on logits (B*T, V) and targets (B*T,)"))


def _support(out, prompt_len):
    return sorted(set(out[:, prompt_len:].flatten().tolist()))


@graded(points=1)
def check_block(student):
    """TransformerBlock: pre-LN residual block x + attn(ln1(x)), then + mlp(ln2(x))"""
    got = student.probe("block_variants")
    expect_shape(got["out"], (2, 7, 32), "TransformerBlock on x (2, 7, 32)")
    if got["pre_ln"] is None:  # submodules named otherwise: only the shape is checked here
        return
    variants = {k: v for k, v in got.items() if k not in ("out", "pre_ln") and v is not None}
    names = {"post_ln": "LayerNorm after the residual (post-LN); this is pre-LN: x + attn(ln1(x))",
             "no_mlp_residual": "the MLP's output replaces x; add it: x = x + mlp(ln2(x))",
             "no_attn_residual": "the attention output replaces x; add it: x = x + attn(ln1(x))",
             "relu": "ReLU in the MLP; the block uses GELU (nn.GELU between mlp.0 and mlp.2)",
             "shared_norm": "ln1 used before the MLP too; the MLP reads ln2(x)"}
    expect_close(got["out"], got["pre_ln"], "TransformerBlock(x) vs x + attn(ln1(x)), then + mlp(ln2(.)), with your layers",
                 atol=1e-5, hint=diagnose(got["out"], {names[k]: v for k, v in variants.items()},
                                          default="pre-LN: x = x + attn(ln1(x)); x = x + mlp(ln2(x))"))


@graded(points=1)
def check_generate(student):
    """generate: greedy, temperature, top-k, top-p (including top_p = 0), seeded reproducibility"""
    checks = Checks()
    # Next-token probabilities after any token (not sorted, so top-p must map sorted entries back to ids).
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    order = probs.argsort(descending=True).tolist()  # [1, 3, 0, 2]
    table = probs.log().expand(4, 4).clone()
    prompt = torch.zeros(64, 1, dtype=torch.long)
    def run(seed=0, **kw):
        kw = {"temperature": 1.0, "top_k": None, "top_p": None, **kw}
        return student.probe("sample", table=table, prompt=prompt, n=4, seed=seed, **kw)["out"]
    with checks.case("greedy"):
        got = run(temperature=0.0)
        expect_equal(got, torch.cat([prompt, torch.ones(64, 4, dtype=torch.long)], dim=1),
                     "generate(temperature=0): prompt + 4 tokens", hint="temperature 0 means greedy: logits.argmax(-1), no sampling")
    with checks.case("temperature"):
        cold, hot = _support(run(temperature=0.05), 1), _support(run(temperature=20.0), 1)
        hint = diagnose((cold, hot), {"the temperature is ignored: divide the logits by it": (sorted(order), sorted(order)),
                                      "the logits are multiplied by the temperature; divide them": (sorted(order), [1])},
                        default="divide the logits by the temperature before the softmax")
        expect_equal(cold, [1], "tokens drawn at temperature 0.05 (256 draws, almost surely the most likely)", hint=hint)
        expect_equal(hot, [0, 1, 2, 3], "tokens drawn at temperature 20 (256 draws, nearly uniform)", hint=hint)
    with checks.case("top_k=2"):
        got = _support(run(top_k=2), 1)
        expect_equal(got, sorted(order[:2]), "tokens drawn with top_k=2 (256 draws)", hint=diagnose(got, {
            "top-k kept every token: set the logits below the k-th largest to -inf (not 0) before the softmax": [0, 1, 2, 3]},
            default="keep the k largest logits, -inf elsewhere"))
    for top_p in (0.7, 0.9, 0.0):
        with checks.case(f"top_p={top_p}"):
            got = _support(run(top_p=top_p), 1)
            n = max(1, sum(1 for i in range(4) if probs[order[:i]].sum() < top_p))  # smallest prefix reaching top_p
            expect_equal(got, sorted(order[:n]), f"tokens drawn with top_p={top_p} from probabilities {probs.tolist()} (256 draws)",
                         hint=diagnose(got, {
                             "top-p kept every token": [0, 1, 2, 3],
                             "the kept probabilities were not mapped back to their token ids (scatter them by the sort "
                             "indices)": list(range(n)),
                             "top-p dropped the token whose probability makes the sum reach top_p (keep it: the "
                             "smallest prefix whose sum REACHES top_p)": sorted(order[:n - 1]) if n > 1 else None,
                             "top-p kept one token too many": sorted(order[:n + 1]),
                         }, default="sort the probabilities, keep the smallest prefix whose sum reaches top_p "
                                    "(at least one token, even for top_p = 0), map back to token ids, sample"))
    with checks.case("cache use"):
        calls = student.probe("sample", table=table, prompt=torch.zeros(2, 3, dtype=torch.long), n=4, seed=0,
                              temperature=0.0, top_k=None, top_p=None)["calls"]
        expect(bool(calls) and calls[0] == [3, 0], "generate", f"first model call (prompt length, cache) was {calls[:1]}",
               hint="create the cache once with model.new_cache(B) and feed it the whole prompt")
        later = calls[1:]
        bug = diagnose(sorted({c[1] for c in later}), {
            "the new tokens are fed without the cache: pass the same cache to every call": [-1],
            "a fresh cache is made after the prompt, so the prompt's keys and values are lost: keep the first one": [1]})
        expect(all(c == [1, 0] for c in later), "generate",
               f"after the prompt, [tokens, cache] of each call were {later} (expected [1, 0]: one token, the first cache)",
               hint=bug or "one new token per call, through the cache that holds the prompt")
    with checks.case("seeded generator"):
        expect_equal(run(seed=7), run(seed=7), "two samples with generators seeded alike",
                     hint="pass generator=generator to torch.multinomial")
    return checks
