"""HW1 hidden suite, part 2: attention layer (GQA, cache), the LM, loss, sampling, a training gate."""
import math

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, expect, expect_close, expect_equal, expect_shape, graded, reference
from genai_course.grading.weights import expect_loaded, random_state

ref = reference("hw1")


def _weights(g, d_model, n_heads, n_kv):
    hd = d_model // n_heads
    return {"q_proj": torch.randn(n_heads * hd, d_model, generator=g) * 0.2,
            "k_proj": torch.randn(n_kv * hd, d_model, generator=g) * 0.2,
            "v_proj": torch.randn(n_kv * hd, d_model, generator=g) * 0.2,
            "o_proj": torch.randn(d_model, n_heads * hd, generator=g) * 0.2}


def _expect_loaded(got, what):
    expect_loaded(got, what, hint="build exactly the layers the docstring lists (types, shapes, biases, tied lm_head)")


def _expect_joined(got, what):
    expect(got["cached"] is not None, what, f"the outputs of the pieces have shapes {got['cached_shapes'][:6]} and do "
           "not join along T", hint="each call returns (B, T_piece, ...) for the T_piece tokens it was given")


def _ref_layer(d_model, n_heads, window, n_kv, w):
    layer = ref.MultiHeadSelfAttention(d_model, n_heads, window, n_kv)
    with torch.no_grad():
        for name, t in w.items():
            getattr(layer, name).weight.copy_(t)
    return layer.eval()


@graded(points=3, timeout=20)
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


@graded(points=3, timeout=20)
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
            _expect_joined(got, "attention fed through a RollingKVCache in pieces")
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


BLOCK_CFGS = [(CFG, 13), ({"vocab_size": 11, "d_model": 24, "n_layers": 1, "n_heads": 3, "n_kv_heads": 1, "window": 5,
                          "context": 16}, 9)]


@graded(points=2, timeout=20)
def test_transformer_block(student):
    """TransformerBlock: with the reference's weights, the same outputs (pre-LN, both residuals)"""
    g = student.rng()
    checks = Checks()
    for cfg, T in BLOCK_CFGS:
        label = f"d_model={cfg['d_model']}, n_heads={cfg['n_heads']}, n_kv_heads={cfg['n_kv_heads']}, window={cfg['window']}"
        with checks.case(label):
            block = ref.TransformerBlock(ref.LMConfig(**cfg)).eval()
            state = random_state(block, g)
            x = torch.randn(2, T, cfg["d_model"], generator=g)
            got = student.probe("block_outputs", cfg=cfg, state=state, x=x)
            what = f"TransformerBlock({label}) with the reference's weights on x of shape {tuple(x.shape)}"
            _expect_loaded(got, what)
            with torch.no_grad():
                expected = block(x)
            expect_close(got["out"], expected, what, atol=1e-3, rtol=1e-3,
                         hint="pre-LN: x = x + attn(ln1(x)), then x = x + mlp(ln2(x)), mlp = Linear -> GELU -> Linear")
    return checks


@graded(points=4, timeout=20)
def test_language_model(student):
    """TransformerLM: shape, tied embeddings, parameter count, causality, cached = uncached, reference logits under the same weights"""
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
        _expect_joined(got, "logits computed through the cache")
        expect_close(got["cached"], got["logits"], "logits computed through the cache vs all at once", atol=1e-4)
    model = ref.TransformerLM(ref.LMConfig(**CFG)).eval()
    state = random_state(model, g)
    with torch.no_grad():
        expected = model(idx)
    loaded = student.probe("lm_forward", cfg=CFG, state=state, idx=idx, prefix=5)
    what = "TransformerLM(cfg) with the reference's weights on idx of shape (2, 15)"
    with checks.case("same weights as the reference: logits"):
        _expect_loaded(loaded, what)
        expect_close(loaded["logits"], expected, what, atol=1e-3, rtol=1e-3,
                     hint="tok_emb -> blocks -> ln_f -> lm_head: check the final LayerNorm and the block order")
    with checks.case("same weights as the reference: through the cache"):
        _expect_loaded(loaded, what)
        _expect_joined(loaded, f"{what}, fed 5 tokens then one at a time through new_cache(2)")
        uncached_ok = (isinstance(loaded["logits"], torch.Tensor) and loaded["logits"].shape == expected.shape
                       and torch.allclose(loaded["logits"], expected, atol=1e-3, rtol=1e-3))
        expect_close(loaded["cached"], expected, f"{what}, fed 5 tokens then one at a time through new_cache(2)",
                     atol=1e-3, rtol=1e-3,
                     hint="every block gets its own cache (cache[i] for block i), positions continue from cache.seen"
                          if uncached_ok else "the logits without a cache differ as well: fix those first")
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


def _greedy_bigram(table, prompt, n):
    seq = prompt.clone()
    for _ in range(n):
        seq = torch.cat([seq, table[seq[:, -1]].argmax(-1, keepdim=True)], dim=1)
    return seq


# next-token logits that ignore the history (every row of the stand-in's table is the same): the new
# tokens are independent draws from one distribution, whose frequencies the grader compares
IID_ROW = torch.tensor([0.0, 1.5, -1.0, 0.5, 1.0, -0.5])


def _expected_distribution(temperature, top_k, top_p):
    """From first principles: softmax(row / temperature), restricted to the top_k largest logits or to the
    smallest prefix of the sorted probabilities whose sum reaches top_p, renormalised."""
    p = torch.softmax(IID_ROW / temperature, dim=0)
    keep = torch.zeros(len(p), dtype=torch.bool)
    if top_k is not None:
        keep[torch.topk(IID_ROW, top_k).indices] = True
    elif top_p is not None:
        sp, si = p.sort(descending=True)
        keep[si[(sp.cumsum(0) - sp) < top_p]] = True
        keep[si[0]] = True
    else:
        keep[:] = True
    p = p * keep
    return p / p.sum()


def _distribution_case(student, checks, temperature, top_k, top_p, seed, hint):
    label = f"temperature={temperature}, top_k={top_k}, top_p={top_p}"
    with checks.case(f"distribution of samples at {label}"):
        B, n = 250, 20
        table = IID_ROW.expand(len(IID_ROW), -1).clone()
        got = student.probe("sample", table=table, prompt=torch.zeros(B, 1, dtype=torch.long), n=n,
                            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        what = f"generate(prompt ({B}, 1), max_new_tokens={n}, {label}) with a stand-in model whose next-token logits over 6 tokens are the same at every step"
        expect_shape(got["out"], (B, 1 + n), what)
        tokens = got["out"][:, 1:].reshape(-1)
        expect(bool(((tokens >= 0) & (tokens < len(IID_ROW))).all()), what, "sampled ids outside the vocabulary")
        freq = torch.bincount(tokens, minlength=len(IID_ROW)).float() / tokens.numel()
        expected = _expected_distribution(temperature, top_k, top_p)
        tv = 0.5 * (freq - expected).abs().sum().item()
        expect(tv < 0.05, what,
               f"the frequencies of {tokens.numel()} sampled tokens {[round(f, 3) for f in freq.tolist()]} are far from "
               f"the expected probabilities {[round(f, 3) for f in expected.tolist()]} (total variation {tv:.3f})", hint=hint)


@graded(points=5)
def test_generate(student):
    """generate: greedy, prompt as context, temperature, top-k, top-p (incl. 0), seeded sampling, one call per token"""
    g = student.rng()
    table = _table(g)
    prompt = torch.tensor([[3, 5], [1, 1]])
    checks = Checks()
    with checks.case("greedy (temperature 0)"):
        got = student.probe("sample", table=table, prompt=prompt, n=6, temperature=0.0, top_k=None, top_p=None, seed=None)
        expect_equal(got["out"], _greedy_bigram(table, prompt, 6), "generate(..., temperature=0) with a bigram stand-in model")
        calls = got["calls"]
        # the last sampled token may or may not be fed back (it is never needed): 6 or 7 calls
        expect(len(calls) in (6, 7) and calls[:1] == [2] and all(c == 1 for c in calls[1:]),
               "generate(prompt (2, 2), max_new_tokens=6, temperature=0)",
               f"called the model with sequence lengths {calls} (expected [2, 1, 1, 1, 1, 1] or one more 1)",
               hint="feed the prompt once, then one token per step through the cache")
    with checks.case("new tokens see the prompt through the cache"):
        V = 12
        ptable = _table(g, V)
        pprompt = torch.tensor([[4, 7, 2], [9, 0, 6]])
        got = student.probe("sample_prefix", table=ptable, prompt=pprompt, n=8, temperature=0.0, seed=None)
        seq = pprompt.clone()
        for _ in range(8):
            seq = torch.cat([seq, ptable[seq.sum(dim=1) % V].argmax(-1, keepdim=True)], dim=1)
        expect_equal(got["out"], seq, "generate(prompt (2, 3), max_new_tokens=8, temperature=0) with a stand-in model "
                     "whose next token depends on every earlier token, prompt included",
                     hint="create the cache once with model.new_cache(B), feed it the prompt, and pass the SAME cache "
                          "with every new token")
    _distribution_case(student, checks, 0.5, None, None, 11,
                       hint="divide the logits by the temperature before the softmax")
    _distribution_case(student, checks, 2.0, None, None, 12,
                       hint="divide the logits by the temperature before the softmax")
    with checks.case("top-k support"):
        got = student.probe("sample", table=table, prompt=prompt, n=40, temperature=1.5, top_k=3, top_p=None, seed=1)
        out = got["out"]
        allowed = torch.topk(table, 3, dim=-1).indices
        ok = all(int(out[b, t]) in allowed[int(out[b, t - 1])].tolist() for b in range(2) for t in range(2, 42))
        expect(ok, "generate(top_k=3)", "sampled a token outside the 3 most likely")
    _distribution_case(student, checks, 1.0, 2, None, 13,
                       hint="set every logit below the k-th largest to -inf, then softmax")
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
    _distribution_case(student, checks, 1.0, None, 0.7, 14,
                       hint="sort the probabilities, keep the prefix whose sum first reaches top_p, map the kept "
                            "probabilities back to their token ids and renormalise")
    with checks.case("top_p=0 keeps only the most likely token"):
        got = student.probe("sample", table=table, prompt=prompt, n=8, temperature=1.0, top_k=None, top_p=0.0, seed=3)
        expect_equal(got["out"], _greedy_bigram(table, prompt, 8),
                     "generate(prompt (2, 2), max_new_tokens=8, temperature=1, top_p=0.0) with a bigram stand-in model",
                     hint="top-p always keeps at least the most likely token: with top_p=0 sampling is greedy")
    with checks.case("reproducible with a seeded generator"):
        a = student.probe("sample", table=table, prompt=prompt, n=20, temperature=1.0, top_k=None, top_p=None, seed=7)
        b = student.probe("sample", table=table, prompt=prompt, n=20, temperature=1.0, top_k=None, top_p=None, seed=7)
        c = student.probe("sample", table=table, prompt=prompt, n=20, temperature=1.0, top_k=None, top_p=None, seed=8)
        expect_equal(a["out"], b["out"], "two samples with the same seeded generator", hint="pass generator= to torch.multinomial")
        expect_shape(a["out"], (2, 22), "generate(prompt (2, 2), max_new_tokens=20)")
        expect(not torch.equal(a["out"], c["out"]), "two samples of 20 tokens with generators seeded 7 and 8",
               "are identical: the generator is not used", hint="pass generator= to torch.multinomial")
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
    if isinstance(logits, dict):
        expect(False, "TransformerLM trained 150 steps", logits.get("problem", ""),
               hint="forward(idx (B, T)) returns logits (B, T, vocab_size)")
    expect_shape(logits, (20, 64, tok.vocab_size), "TransformerLM logits on the validation windows")
    loss = F.cross_entropy(logits.reshape(-1, tok.vocab_size), val_y.reshape(-1)).item()
    uniform = math.log(tok.vocab_size)
    expect(loss < 0.7 * uniform, "TransformerLM trained 150 steps (AdamW, lr 3e-3) on 50k characters",
           f"validation loss {loss:.2f} nats/char is not well below uniform guessing ({uniform:.2f})",
           hint="check the residual connections, LayerNorm placement and causal masking")
