"""HW1 hidden suite, part 1: tokenizer, mask, attention (dense and banded), RoPE."""
import math

import torch
import torch.nn.functional as F

from genai_course.grading import (Checks, Fail, StudentError, expect, expect_close, expect_equal, expect_shape,
                                  graded, reference)

ref = reference("hw1")


@graded(points=1)
def test_tokenizer(student):
    """CharTokenizer: sorted vocabulary, encode/decode round trip"""
    text = "To be, or not to be: that is the question.\nWhether 'tis nobler"
    got = student.probe("tokenizer_roundtrip", text=text, probe="the question: to be, or not")
    tok = ref.CharTokenizer(text)
    expect_equal(got["vocab_size"], tok.vocab_size, "CharTokenizer(text).vocab_size")
    expect_equal(got["ids"], tok.encode("the question: to be, or not"), "encode(...)",
                 hint="id i is the i-th character of sorted(set(text))")
    expect_equal(got["decoded"], "the question: to be, or not", "decode(encode(s))")
    expect_equal(got["decoded_tensor"], "the question: to be, or not", "decode(LongTensor of ids)")


@graded(points=1)
def test_mask(student):
    """sliding_window_mask for many (T, window), including window = 1 and window >= T"""
    checks = Checks()
    for T, w in [(1, 1), (6, 1), (7, 3), (8, 8), (5, 9), (33, 4), (64, 17)]:
        with checks.case(f"T={T}, window={w}"):
            expect_equal(student.call("sliding_window_mask", T, w), ref.sliding_window_mask(T, w),
                         f"sliding_window_mask({T}, {w})", hint="True iff i - window < j <= i (bool dtype)")
    return checks


@graded(points=3)
def test_dense_attention(student):
    """scaled_dot_product_attention against torch's oracle; masked keys get zero weight; empty rows are zeros"""
    g = student.rng()
    checks = Checks()
    with checks.case("no mask"):
        q, k, v = (torch.randn(2, 3, 9, 16, generator=g) for _ in range(3))
        expect_close(student.call("scaled_dot_product_attention", q, k, v), F.scaled_dot_product_attention(q, k, v),
                     "scaled_dot_product_attention(q, k, v) with (B, H, T, D) = (2, 3, 9, 16)", atol=1e-5,
                     hint="scale the scores by 1/sqrt(D)")
    with checks.case("sliding-window mask"):
        q, k, v = (torch.randn(1, 2, 12, 8, generator=g) for _ in range(3))
        m = ref.sliding_window_mask(12, 4)
        expect_close(student.call("scaled_dot_product_attention", q, k, v, m),
                     F.scaled_dot_product_attention(q, k, v, attn_mask=m), "attention with a (12, 12) window mask",
                     atol=1e-5)
    with checks.case("masked keys have exactly zero weight"):
        q, k = torch.randn(1, 1, 4, 8, generator=g), torch.randn(1, 1, 4, 8, generator=g)
        v = torch.zeros(1, 1, 4, 8)
        v[..., 3, :] = 1e6  # a masked key with a huge value: any non-zero weight shows
        m = torch.tensor([[True, False, False, False], [True, True, False, False], [True, True, True, False],
                          [True, True, True, False]])
        out = student.call("scaled_dot_product_attention", q, k, v, m)
        expect_close(out, torch.zeros(1, 1, 4, 8), "attention where key 3 is masked for every query", atol=0,
                     hint="set masked scores to -inf before the softmax")
    with checks.case("fully masked rows return zeros, no NaN"):
        q, k, v = (torch.randn(1, 1, 3, 4, generator=g) for _ in range(3))
        m = torch.tensor([[False, False, False], [True, False, False], [True, True, False]])
        expect_close(student.call("scaled_dot_product_attention", q, k, v, m), ref.scaled_dot_product_attention(q, k, v, m),
                     "attention whose first query row has no key", atol=1e-5, hint="zero the rows with no allowed key")
    return checks


@graded(points=3)
def test_banded_equals_dense(student):
    """banded_attention equals dense masked attention (padding, window >= T, window = 1), with gradients"""
    g = student.rng()
    checks = Checks()
    for B, H, T, D, w in [(2, 3, 16, 8, 4), (1, 2, 37, 8, 5), (1, 1, 7, 4, 20), (1, 2, 9, 4, 1), (2, 1, 64, 16, 64)]:
        with checks.case(f"(B, H, T, D)=({B}, {H}, {T}, {D}), window={w}"):
            q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
            got = student.probe("banded_run", q=q, k=k, v=v, window=w)
            qr = q.clone().requires_grad_(True)
            expected = ref.scaled_dot_product_attention(qr, k, v, ref.sliding_window_mask(T, w))
            expected.sum().backward()
            expect_close(got["out"], expected.detach(), f"banded_attention at T={T}, window={w}", atol=1e-4,
                         hint="pad T to a multiple of the window; block 0 has no previous block")
            expect_close(got["grad_q"], qr.grad, f"gradient of banded_attention w.r.t. q at T={T}, window={w}", atol=1e-4)
    return checks


MEMORY_BUDGET_MB = 64  # banded (reference) needs ~6 MB here; dense masked attention over 200 MB


@graded(points=2, timeout=30)
def test_banded_memory(student):
    """banded_attention at T = 4096, window 32: forward and backward within 64 MB of extra memory"""
    T, w = 4096, 32
    g = student.rng()
    q, k, v = (torch.randn(1, 1, T, 16, generator=g) for _ in range(3))
    what = f"banded_attention at T={T}, window={w}, forward and backward"
    hint = "work block by block: scores of shape (B, H, T/w, w, 2w), never (T, T) nor a (T, w, D) copy of the keys"
    try:
        # The budget is an address-space limit the grader sets on the process from outside.
        with student.memory_budget(MEMORY_BUDGET_MB):
            got = student.probe("banded_run", q=q, k=k, v=v, window=w)
    except StudentError as e:
        raise Fail(f"{what}: {e}\n    (one T x T float tensor alone is {T * T * 4 / 2**20:.0f} MB)\n    Hint: {hint}") from None
    expect_close(got["out"][:, :, -50:], ref.banded_attention(q, k, v, w)[:, :, -50:], what, atol=1e-4)


@graded(points=2)
def test_rope(student):
    """RotaryEmbedding: reference rotation, norms preserved, scores depend only on i - j"""
    g = student.rng()
    checks = Checks()
    x = torch.randn(2, 3, 10, 16, generator=g)
    pos = torch.arange(5, 15)
    with checks.case("matches the reference rotation"):
        expect_close(student.probe("rope_apply", head_dim=16, base=10000.0, x=x, positions=pos),
                     ref.RotaryEmbedding(16)(x, pos), "RotaryEmbedding(16)(x of shape (2, 3, 10, 16), positions 5..14)",
                     atol=1e-5, hint="interleaved pairs (0,1), (2,3), ...; theta_m = base ** (-2m / D)")
    with checks.case("other base"):
        expect_close(student.probe("rope_apply", head_dim=8, base=500.0, x=x[..., :8], positions=pos),
                     ref.RotaryEmbedding(8, 500.0)(x[..., :8], pos), "RotaryEmbedding(8, base=500)", atol=1e-5)
    with checks.case("relative positions"):
        qv, kv = torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g)
        def score(i, j):
            a = student.probe("rope_apply", head_dim=8, base=10000.0, x=qv, positions=torch.tensor([i]))
            b = student.probe("rope_apply", head_dim=8, base=10000.0, x=kv, positions=torch.tensor([j]))
            return (a * b).sum()
        expect_close(score(7, 3), score(104, 100), "q.k after RoPE at (7, 3) vs (104, 100)", atol=1e-4,
                     hint="the score must depend only on i - j")
    return checks
