"""Public probes of HW1 (run in the sandbox by `genai-course check`)."""
import torch


def layer_cached_vs_full(ns):
    torch.manual_seed(0)
    att = ns.MultiHeadSelfAttention(32, n_heads=4, window=5, n_kv_heads=2).eval()
    x = torch.randn(2, 13, 32)
    with torch.no_grad():
        full = att(x)
        cache = ns.RollingKVCache(5, 2, 2, 8)
        inc = torch.cat([att(x[:, :6], cache)] + [att(x[:, t:t + 1], cache) for t in range(6, 13)], dim=1)
    return {"full": full, "inc": inc}


def lm_shapes(ns):
    torch.manual_seed(0)
    cfg = ns.LMConfig(vocab_size=20, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, window=4)
    lm = ns.TransformerLM(cfg).eval()
    idx = torch.randint(0, 20, (2, 11))
    with torch.no_grad():
        logits = lm(idx)
    out = ns.generate(lm, idx[:, :3], 5, temperature=0)
    return {"logits": logits, "generated": out}


def rope_norms(ns):
    x = torch.randn(2, 5, 8)
    return {"x": x, "r": ns.RotaryEmbedding(8)(x, torch.arange(5))}
