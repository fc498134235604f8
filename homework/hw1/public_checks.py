"""Public checks of HW1, run by `genai-course check hw1.ipynb`: the notebook's sanity checks, in
the grader's sandbox. The hidden suite tests other inputs, memory, sampling and a training run."""
import torch
import torch.nn.functional as F

from genai_course.grading import expect, expect_close, expect_equal, expect_shape, graded


@graded(points=1)
def check_mask(student):
    """sliding_window_mask(4, 2)"""
    expect_equal(student.call("sliding_window_mask", 4, 2),
                 torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool),
                 "sliding_window_mask(4, 2)")


@graded(points=1)
def check_attention(student):
    """scaled_dot_product_attention and banded_attention agree with torch on a small case"""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 10, 8, generator=g) for _ in range(3))
    m = torch.ones(10, 10, dtype=torch.bool).tril() & ~torch.ones(10, 10, dtype=torch.bool).tril(-4)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    expect_close(student.call("scaled_dot_product_attention", q, k, v, m), want, "scaled_dot_product_attention", atol=1e-5)
    expect_close(student.call("banded_attention", q, k, v, 4), want, "banded_attention(window=4)", atol=1e-5)


@graded(points=1)
def check_rope(student):
    """RotaryEmbedding preserves norms and leaves position 0 unchanged"""
    got = student.probe("rope_norms")
    expect_close(got["r"].norm(dim=-1), got["x"].norm(dim=-1), "norms after RoPE", atol=1e-5)
    expect_close(got["r"][:, 0], got["x"][:, 0], "RoPE at position 0", atol=1e-6)


@graded(points=1)
def check_cache(student):
    """MultiHeadSelfAttention through a RollingKVCache equals the full forward"""
    got = student.probe("layer_cached_vs_full")
    expect_shape(got["full"], (2, 13, 32), "MultiHeadSelfAttention output")
    expect_close(got["inc"], got["full"], "cached vs full attention", atol=1e-5)


@graded(points=1)
def check_model(student):
    """TransformerLM output shape and greedy generate length"""
    got = student.probe("lm_shapes")
    expect_shape(got["logits"], (2, 11, 20), "TransformerLM logits")
    expect_shape(got["generated"], (2, 8), "generate(prompt (2, 3), max_new_tokens=5)")
    expect(bool((got["generated"][:, :3] >= 0).all()), "generate", "the prompt must start the output")
