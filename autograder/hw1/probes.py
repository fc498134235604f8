"""HW1 probes: scenarios that run INSIDE the sandbox against the student's module ``ns``.
They return raw outputs; all expected values are computed by the grader, and the memory check is a
budget the grader enforces from outside the sandbox (``student.memory_budget``), not a measurement
taken in here."""
import torch
import torch.nn.functional as F

from genai_course.grading.weights import load_reference


def tokenizer_roundtrip(ns, text, probe):
    tok = ns.CharTokenizer(text)
    ids = tok.encode(probe)
    return {"vocab_size": tok.vocab_size, "ids": list(ids), "decoded": tok.decode(ids),
            "decoded_tensor": tok.decode(torch.tensor(ids))}


def banded_run(ns, q, k, v, window):
    """Output of banded_attention and the gradient of its sum w.r.t. q (forward and backward)."""
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    out = ns.banded_attention(q, k, v, window)
    out.sum().backward()
    return {"out": out.detach(), "grad_q": q.grad}


def rope_apply(ns, head_dim, base, x, positions):
    rope = ns.RotaryEmbedding(head_dim, base)
    return rope(x, positions)


def _layer(ns, d_model, n_heads, window, n_kv_heads, weights):
    layer = ns.MultiHeadSelfAttention(d_model, n_heads, window, n_kv_heads)
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            getattr(layer, name).weight.copy_(weights[name])
    return layer.eval()


def _cat(pieces):
    """The outputs joined along T, or None when they do not fit together: a probe reports what the student's
    code returned instead of raising on it (an error raised by a probe's own line is the grader's)."""
    if (pieces and all(isinstance(p, torch.Tensor) and p.dim() == 3 for p in pieces)
            and len({(p.shape[0], p.shape[2]) for p in pieces}) == 1):
        return torch.cat(pieces, dim=1)
    return None


def _shapes(pieces):
    return [list(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__ for p in pieces]


def attention_layer(ns, d_model, n_heads, window, n_kv_heads, weights, x, split):
    """Full forward, and the same sequence fed through a RollingKVCache in pieces of sizes `split`."""
    layer = _layer(ns, d_model, n_heads, window, n_kv_heads, weights)
    with torch.no_grad():
        full = layer(x)
        cache = ns.RollingKVCache(window, x.shape[0], n_kv_heads or n_heads, d_model // n_heads)
        pieces, start = [], 0
        for n in split:
            pieces.append(layer(x[:, start:start + n], cache))
            start += n
    k = getattr(cache, "k", None)
    return {"full": full, "cached": _cat(pieces), "cached_shapes": _shapes(pieces),
            "cache_k_shape": list(k.shape) if isinstance(k, torch.Tensor) else None}


def cache_placement(ns, cfg):
    """Where the caches put their buffers: built directly on the 'meta' device in float64, and by
    new_cache of a model converted to float64."""
    direct = ns.RollingKVCache(4, 1, 2, 8, device="meta", dtype=torch.float64)
    model = ns.TransformerLM(ns.LMConfig(**cfg)).to(torch.float64)
    made = model.new_cache(1)[0]
    return {"direct": [str(direct.k.device), str(direct.k.dtype), str(direct.v.device), str(direct.pos.device),
                       str(direct.pos.dtype)],
            "new_cache": [str(made.k.device), str(made.k.dtype), str(made.pos.dtype)]}


def lm_outputs(ns, cfg, seed, idx, idx_changed):
    torch.manual_seed(seed)
    model = ns.TransformerLM(ns.LMConfig(**cfg)).eval()
    with torch.no_grad():
        logits = model(idx)
        changed = model(idx_changed)
        cache = model.new_cache(idx.shape[0])
        pieces = [model(idx[:, :5], cache)] + [model(idx[:, t:t + 1], cache) for t in range(5, idx.shape[1])]
    head, emb = getattr(getattr(model, "lm_head", None), "weight", None), getattr(getattr(model, "tok_emb", None), "weight", None)
    tied = head is not None and head is emb
    return {"logits": logits, "changed": changed, "cached": _cat(pieces), "cached_shapes": _shapes(pieces), "tied": tied,
            "n_params": sum(p.numel() for p in model.parameters())}


def loss_of(ns, logits, targets):
    return ns.lm_loss(logits, targets)


class _FixedLM(torch.nn.Module):
    """A stand-in model whose next-token logits are a fixed table of the last token (a bigram);
    it records how it was called, so generate() can be checked without the student's LM."""

    def __init__(self, table):
        super().__init__()
        # a parameter (frozen), so generate() may read the device/dtype from model.parameters()
        self.table = torch.nn.Parameter(table, requires_grad=False)
        self.calls = []

    def new_cache(self, batch_size):
        return []

    def forward(self, idx, cache=None):
        self.calls.append(idx.shape[1])
        return self.table[idx]  # (B, T, V)


def sample(ns, table, prompt, n, temperature, top_k, top_p, seed):
    model = _FixedLM(table)
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    out = ns.generate(model, prompt, n, temperature=temperature, top_k=top_k, top_p=top_p, generator=g)
    return {"out": out, "calls": model.calls}


def training_gate(ns, cfg, train_ids, val_x, steps, batch, lr):
    torch.manual_seed(0)
    model = ns.TransformerLM(ns.LMConfig(**cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    T = cfg["context"]
    for _ in range(steps):
        s = torch.randint(0, len(train_ids) - T - 1, (batch,), generator=g)
        x = torch.stack([train_ids[i:i + T] for i in s.tolist()])
        y = torch.stack([train_ids[i + 1:i + T + 1] for i in s.tolist()])
        logits = model(x)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (batch, T, cfg["vocab_size"]):
            return {"problem": f"during training the model returned {_shapes([logits])[0]} for idx of shape {[batch, T]}"}
        loss = F.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return model(val_x)


def block_outputs(ns, cfg, state, x):
    """ns.TransformerBlock(ns.LMConfig(**cfg)) with the reference's weights, in eval mode, on x."""
    block = ns.TransformerBlock(ns.LMConfig(**cfg)).eval()
    missing, extra = load_reference(block, state)
    with torch.no_grad():
        return {"out": block(x), "missing": missing, "extra": extra}


def lm_forward(ns, cfg, state, idx, prefix):
    """ns.TransformerLM with the reference's weights: logits at once, and through the cache (the first
    `prefix` tokens together, then one token at a time)."""
    model = ns.TransformerLM(ns.LMConfig(**cfg)).eval()
    missing, extra = load_reference(model, state)
    with torch.no_grad():
        logits = model(idx)
        cache = model.new_cache(idx.shape[0])
        pieces = [model(idx[:, :prefix], cache)] + [model(idx[:, t:t + 1], cache) for t in range(prefix, idx.shape[1])]
    return {"logits": logits, "cached": _cat(pieces), "cached_shapes": _shapes(pieces), "missing": missing, "extra": extra}


class _Memory:
    tokens = None


class _PrefixLM(torch.nn.Module):
    """A stand-in model whose next-token logits are table[(sum of ALL tokens so far) % V]: the answer
    depends on the whole prefix, prompt included. It keeps the tokens it was fed in its cache; without
    a cache it sees only `idx`."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(table, requires_grad=False)
        self.calls = []

    def new_cache(self, batch_size):
        return [_Memory()]

    def forward(self, idx, cache=None):
        self.calls.append(idx.shape[1])
        seen = idx
        if cache is not None:
            if cache[0].tokens is not None:
                seen = torch.cat([cache[0].tokens, idx], dim=1)
            cache[0].tokens = seen
        sums = seen.cumsum(dim=1)[:, -idx.shape[1]:] % self.table.shape[0]
        return self.table[sums]  # (B, T, V)


def sample_prefix(ns, table, prompt, n, temperature, seed):
    model = _PrefixLM(table)
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    out = ns.generate(model, prompt, n, temperature=temperature, generator=g)
    return {"out": out, "calls": model.calls}
