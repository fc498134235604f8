"""HW1 hidden suite, part 2: attention layer (GQA, cache), the LM, loss, sampling, a training gate."""
import math

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, expect, expect_close, expect_equal, expect_shape, graded, reference

ref = reference("hw1")


def _weights(g, d_model, n_heads, n_kv):
    hd = d_model // n_heads
    return {"q_proj": torch.randn(n_heads * hd, d_model, generator=g) * 0.2,
            "k_proj": torch.randn(n_kv * hd, d_model, generator=g) * 0.2,
            "v_proj": torch.randn(n_kv * hd, d_model, generator=g) * 0.2,
            "o_proj": torch.randn(d_model, n_heads * hd, generator=g) * 0.2}


def _ref_layer(d_model, n_heads, window, n_kv, w):
    layer = ref.MultiHeadSelfAttention(d_model, n_heads, window, n_kv)
    with torch.no_grad():
        for name, t in w.items():
            getattr(layer, name).weight.copy_(t)
    return layer.eval()


@graded(points=4, timeout=20)
def test_attention_layer(student):
    """MultiHeadSelfAttention: matches the reference (MHA and GQA), GQA equals MHA with repeated heads"""
    g = student.rng()
    checks = Checks()
    for d, h, kv, w, T in [(32, 4, None, 5, 13), (32, 4, 2, 6, 17), (48, 6, 1, 4, 9)]:
        label = f"d_model={d}, n_heads={h}, n_kv_heads={kv}, window={w}"
        with checks.case(label):
            wts = _weights(g, d, h, kv or h)
            x = torch.randn(2, T, d, generator=g)
            got = student.probe("attention_layer", d_model=d, n_heads=h, window=w, n_kv_heads=kv, weights=wts, x=x, split=[T])
            with torch.no_grad():
                expected = _ref_layer(d, h, w, kv, wts)(x)
            expect_close(got["full"], expected, f"MultiHeadSelfAttention({label}) on x of shape {tuple(x.shape)}",
                         atol=1e-4, hint="RoPE on q and k before attention; kv head h // (n_heads // n_kv_heads)")
    with checks.case("GQA equals MHA with each kv head repeated"):
        d, h, kv, hd = 32, 4, 2, 8
        wts = _weights(g, d, h, kv)
        rep = {**wts, "k_proj": wts["k_proj"].view(kv, hd, d).repeat_interleave(h // kv, 0).reshape(h * hd, d),
               "v_proj": wts["v_proj"].view(kv, hd, d).repeat_interleave(h // kv, 0).reshape(h * hd, d)}
        x = torch.randn(1, 11, d, generator=g)
        gqa = student.probe("attention_layer", d_model=d, n_heads=h, window=4, n_kv_heads=kv, weights=wts, x=x, split=[11])
        mha = student.probe("attention_layer", d_model=d, n_heads=h, window=4, n_kv_heads=h, weights=rep, x=x, split=[11])
        expect_close(gqa["full"], mha["full"], "GQA (2 kv heads) vs MHA with the kv heads repeated", atol=1e-5)
    return checks


@graded(points=4, timeout=20)
def test_rolling_cache(student):
    """RollingKVCache: cached attention equals full attention for prompts and token-by-token, with O(window) memory"""
    g = student.rng()
    checks = Checks()
    d, h, kv, w, T = 32, 4, 2, 5, 23
    wts = _weights(g, d, h, kv)
    x = torch.randn(2, T, d, generator=g)
    with torch.no_grad():
        expected = _ref_layer(d, h, w, kv, wts)(x)
    for split in ([1] * T, [7] + [1] * 16, [3, 9, 11], [T]):
        with checks.case(f"pieces {split[:4]}{'...' if len(split) > 4 else ''}"):
            got = student.probe("attention_layer", d_model=d, n_heads=h, window=w, n_kv_heads=kv, weights=wts, x=x, split=split)
            expect_close(got["cached"], expected, "attention fed through a RollingKVCache in pieces", atol=1e-4,
                         hint="positions continue from cache.seen; mask keys by absolute position")
            expect_equal(got["cache_k_shape"], [2, kv, w, d // h], "RollingKVCache.k shape after 23 tokens",
                         hint="the buffer has exactly `window` slots, whatever the length")
    with checks.case("buffers on the requested device and dtype"):
        got = student.probe("cache_placement", cfg=CFG)
        expect_equal(got["direct"], ["meta", "torch.float64", "meta", "meta", "torch.int64"],
                     "RollingKVCache(4, 1, 2, 8, device='meta', dtype=torch.float64): [k.device, k.dtype, v.device, pos.device, pos.dtype]",
                     hint="create k, v with device=device, dtype=dtype and pos with device=device (pos stays int64)")
        expect_equal(got["new_cache"], ["cpu", "torch.float64", "torch.int64"],
                     "TransformerLM(cfg).to(torch.float64).new_cache(1)[0]: [k.device, k.dtype, pos.dtype]",
                     hint="new_cache passes the device and dtype of the model's weights")
    return checks


CFG = {"vocab_size": 23, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "window": 4, "context": 32}


@graded(points=3, timeout=20)
def test_language_model(student):
    """TransformerLM: logits shape, tied embeddings, parameter count, causality, cached = uncached"""
    g = student.rng()
    idx = torch.randint(0, 23, (2, 15), generator=g)
    changed = idx.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 23
    got = student.probe("lm_outputs", cfg=CFG, seed=0, idx=idx, idx_changed=changed)
    checks = Checks()
    with checks.case("shape and tied embeddings"):
        expect_shape(got["logits"], (2, 15, 23), "TransformerLM(cfg)(idx of shape (2, 15))")
        expect(got["tied"], "TransformerLM", "lm_head.weight is not tok_emb.weight", hint="tie the output layer to the embedding")
    with checks.case("parameter count"):
        expect_equal(got["n_params"], sum(p.numel() for p in ref.TransformerLM(ref.LMConfig(**CFG)).parameters()),
                     "number of parameters of TransformerLM", hint="pre-LN blocks, 4x GELU MLP, tied head, no biases in attention")
    with checks.case("causality"):
        expect_close(got["changed"][:, :9], got["logits"][:, :9], "logits at positions 0..8 after changing tokens 9..14",
                     atol=1e-5, hint="a token must never see the future")
    with checks.case("cached = uncached"):
        expect_close(got["cached"], got["logits"], "logits computed through the cache vs all at once", atol=1e-4)
    return checks


@graded(points=1)
def test_lm_loss(student):
    """lm_loss equals mean cross-entropy over all positions"""
    g = student.rng()
    logits, targets = torch.randn(3, 7, 11, generator=g), torch.randint(0, 11, (3, 7), generator=g)
    expect_close(student.probe("loss_of", logits=logits, targets=targets),
                 F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)), "lm_loss(logits (3, 7, 11), targets (3, 7))",
                 atol=1e-5, hint="flatten to (B*T, V) and (B*T,)")


def _table(g, V=12):
    return torch.randn(V, V, generator=g) * 2


@graded(points=4)
def test_generate(student):
    """generate: greedy, shape, top-k and top-p support, reproducible with a generator, one call per token"""
    g = student.rng()
    table = _table(g)
    prompt = torch.tensor([[3, 5], [1, 1]])
    checks = Checks()
    with checks.case("greedy (temperature 0)"):
        got = student.probe("sample", table=table, prompt=prompt, n=6, temperature=0.0, top_k=None, top_p=None, seed=None)
        seq = prompt.clone()
        for _ in range(6):
            seq = torch.cat([seq, table[seq[:, -1]].argmax(-1, keepdim=True)], dim=1)
        expect_equal(got["out"], seq, "generate(..., temperature=0) with a bigram stand-in model")
        calls = got["calls"]
        # the last sampled token may or may not be fed back (it is never needed): 6 or 7 calls
        expect(len(calls) in (6, 7) and calls[:1] == [2] and all(c == 1 for c in calls[1:]),
               "generate(prompt (2, 2), max_new_tokens=6, temperature=0)",
               f"called the model with sequence lengths {calls} (expected [2, 1, 1, 1, 1, 1] or one more 1)",
               hint="feed the prompt once, then one token per step through the cache")
    with checks.case("top-k support"):
        got = student.probe("sample", table=table, prompt=prompt, n=40, temperature=1.5, top_k=3, top_p=None, seed=1)
        out = got["out"]
        allowed = torch.topk(table, 3, dim=-1).indices
        ok = all(int(out[b, t]) in allowed[int(out[b, t - 1])].tolist() for b in range(2) for t in range(2, 42))
        expect(ok, "generate(top_k=3)", "sampled a token outside the 3 most likely")
    with checks.case("top-p support"):
        got = student.probe("sample", table=table, prompt=prompt, n=40, temperature=1.0, top_k=None, top_p=0.6, seed=2)
        out = got["out"]
        probs = torch.softmax(table, dim=-1)
        def nucleus(row):
            sp, si = probs[row].sort(descending=True)
            keep = (sp.cumsum(0) - sp) < 0.6
            return set(si[keep].tolist())
        ok = all(int(out[b, t]) in nucleus(int(out[b, t - 1])) for b in range(2) for t in range(2, 42))
        expect(ok, "generate(top_p=0.6)", "sampled a token outside the nucleus",
               hint="keep the smallest prefix of sorted probabilities whose sum reaches top_p")
    with checks.case("reproducible with a seeded generator"):
        a = student.probe("sample", table=table, prompt=prompt, n=20, temperature=1.0, top_k=None, top_p=None, seed=7)
        b = student.probe("sample", table=table, prompt=prompt, n=20, temperature=1.0, top_k=None, top_p=None, seed=7)
        expect_equal(a["out"], b["out"], "two samples with the same seeded generator", hint="pass generator= to torch.multinomial")
        expect_shape(a["out"], (2, 22), "generate(prompt (2, 2), max_new_tokens=20)")
    return checks


@graded(points=2, timeout=45)
def test_training_gate(student):
    """Training gate: your TransformerLM learns Shakespeare well below uniform guessing in 150 steps"""
    text = "".join(__import__("genai_course").data.shakespeare_splits()[1][:60_000])
    tok = ref.CharTokenizer(text)
    ids = torch.tensor(tok.encode(text))
    cfg = {**CFG, "vocab_size": tok.vocab_size, "d_model": 64, "n_heads": 4, "n_kv_heads": 2, "window": 16, "context": 64}
    train, val = ids[:50_000], ids[50_000:]
    val_x = torch.stack([val[i * 64:(i + 1) * 64] for i in range(20)])
    val_y = torch.stack([val[i * 64 + 1:(i + 1) * 64 + 1] for i in range(20)])
    logits = student.probe("training_gate", cfg=cfg, train_ids=train, val_x=val_x, steps=150, batch=16, lr=3e-3)
    expect_shape(logits, (20, 64, tok.vocab_size), "TransformerLM logits on the validation windows")
    loss = F.cross_entropy(logits.reshape(-1, tok.vocab_size), val_y.reshape(-1)).item()
    uniform = math.log(tok.vocab_size)
    expect(loss < 0.7 * uniform, "TransformerLM trained 150 steps (AdamW, lr 3e-3) on 50k characters",
           f"validation loss {loss:.2f} nats/char is not well below uniform guessing ({uniform:.2f})",
           hint="check the residual connections, LayerNorm placement and causal masking")
