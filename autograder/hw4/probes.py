"""HW4 probes: scenarios that run INSIDE the sandbox against the student's module ``ns``. They build the
student's objects from what the suite sends (weights, seeds, prompts), run them and return raw observations;
every expected value is computed by the grader in the parent (the reference solution, torch's
scaled_dot_product_attention). The suite imports this file too: both sides build the same stand-ins from the
same seeds -- a tiny BERT text encoder, a denoiser, a decoder and a prompt encoder.

The sandbox cannot read the course's data cache, so the suite sends the all-MiniLM-L6-v2 tokenizer itself (its
JSON and configuration, about 0.5 MB) and ``_tokenizer`` builds it here; the text model is a tiny BERT with
seeded random weights (MiniLM's own 90 MB of weights stay out of the sandbox).

``sample`` is graded with the grader's own ``cfg_noise_prediction`` and ``null_condition`` in place of the
student's (each has its own test), and ``DiTBlock`` with the grader's own ``CrossAttention``: one bug costs the
points of the test that covers it, not those of every test built on it."""
import math
from contextlib import contextmanager as _contextmanager

import torch
import torch.nn.functional as _F
from torch import nn

from genai_course.models.minilm import _tokenizer_from_meta
from transformers.models.bert.configuration_bert import BertConfig as _BertConfig
from transformers.models.bert.modeling_bert import BertModel as _BertModel


# ---- shared with the suite (the parent builds the same objects from the same seeds) -------------------------

TEXT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
        "max_position_embeddings": 128}


def _tokenizer(meta):
    return _tokenizer_from_meta(meta)


def _text_model(seed: int, dtype: str = "float32"):
    """A tiny BERT (MiniLM's vocabulary, 2 layers of width 32) with seeded random weights, in eval mode; its
    parameters require grad, so an encoder that lets gradients through is seen."""
    config = _BertConfig(vocab_size=30522, type_vocab_size=2, pad_token_id=0, hidden_act="gelu", layer_norm_eps=1e-12,
                         hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, **TEXT)
    config._attn_implementation = "eager"  # the same arithmetic on both sides
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _BertModel(config, add_pooling_layer=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.dim() == 1:
                p.copy_(float(name.endswith("LayerNorm.weight")) + 0.1 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
    return model.to(getattr(torch, dtype)).eval()


class _Denoiser(nn.Module):
    """A stand-in for the DiT, eps(x, t, hidden, mask), cheap and fixed by a seed. Each example's output depends on
    its latent, its timestep, its prompt states under the mask (weighted by position: right padding is not left
    padding), on every position of hidden (padding must be zero states) and on how many positions are valid --
    and also on its row in the batch, the mean over the batch and on how many calls came before: a batch ordered
    [uncond; cond], or two calls of B instead of one of 2B, give other numbers. It records each call's batch size,
    prompt length, timesteps and the first half of the batch (the latent a sampler fed it)."""

    def __init__(self, seed: int, channels: int, size: int, context_dim: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.latent_channels, self.latent_size = channels, size
        self.mix = nn.Parameter(torch.randn(channels, channels, generator=g) / math.sqrt(channels), requires_grad=False)
        self.read = nn.Parameter(torch.randn(context_dim, generator=g) / math.sqrt(context_dim), requires_grad=False)
        self.spill = nn.Parameter(torch.randn(context_dim, generator=g) / math.sqrt(context_dim), requires_grad=False)
        self.records = []

    def forward(self, x, t, hidden, mask):
        n, L = x.shape[0], hidden.shape[1]
        m = mask.to(x.dtype)
        pos = 1 + 0.25 * torch.arange(L, dtype=x.dtype, device=x.device)
        text = (m * (hidden.to(x.dtype) @ self.read.to(x.dtype)) * pos).sum(1) / m.sum(1).clamp_min(1.0)
        spill = 0.1 * (hidden.to(x.dtype) @ self.spill.to(x.dtype)).sum(1)
        per_row = text + spill + 0.05 * m.sum(1) + 0.001 * t.to(x.dtype)
        shape = (n,) + (1,) * (x.dim() - 1)
        h = torch.einsum("dc,bc...->bd...", self.mix.to(x.dtype), x)
        row = 0.02 * torch.arange(n, dtype=x.dtype, device=x.device)
        out = torch.tanh(h + per_row.view(shape)) + (row + 0.1 * text.mean() + 0.03 * len(self.records)).view(shape)
        self.records.append({"batch": int(n), "L": int(L), "t": t.detach().to("cpu").clone(),
                             "z": x[: n // 2].detach().to("cpu").clone()})
        return out


class _Decoder:
    """A stand-in VAE: decode_latents(z) is a fixed linear map of the channels to RGB, upsampled 2x."""

    def __init__(self, seed: int, channels: int):
        g = torch.Generator().manual_seed(seed + 1)
        self.weight = torch.randn(3, channels, generator=g) / math.sqrt(channels)
        self.bias = 0.5 + 0.1 * torch.randn(3, generator=g)

    def decode_latents(self, z):
        img = torch.einsum("dc,bchw->bdhw", self.weight.to(z), z) + self.bias.to(z)[:, None, None]
        return img.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


class _Encoder:
    """A stand-in for encode_prompts: prompts -> (hidden (B, L, D), mask (B, L) bool), one state per word plus two
    end tokens, right-padded with zero states; fixed by a seed, depends only on the text (not on Python's hash)."""

    def __init__(self, seed: int, context_dim: int):
        g = torch.Generator().manual_seed(seed + 2)
        self.table = torch.randn(97, context_dim, generator=g)
        self.calls = 0

    def __call__(self, prompts):
        self.calls += 1
        words = [str(p).split() for p in prompts]
        L = max(len(w) for w in words) + 2
        hidden = torch.zeros(len(words), L, self.table.shape[1])
        mask = torch.zeros(len(words), L, dtype=torch.bool)
        for i, ws in enumerate(words):
            codes = [0] + [sum(map(ord, w)) % 96 + 1 for w in ws] + [0]
            hidden[i, :len(codes)] = self.table[codes] + 0.1 * torch.arange(len(codes), dtype=torch.float32)[:, None]
            mask[i, :len(codes)] = True
        return hidden, mask


# ---- the grader's own helpers, put in place of the student's where another function is graded ----------------

def _grader_null_condition(hidden, mask):
    null_mask = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
    null_mask[:, 0] = True
    return torch.zeros_like(hidden), null_mask


def _grader_cfg_noise_prediction(model, x_t, t, cond, uncond, guidance_scale):
    (h_c, m_c), (h_u, m_u) = cond, uncond
    L = max(h_c.shape[1], h_u.shape[1])

    def pad(h, m):
        return _F.pad(h, (0, 0, 0, L - h.shape[1])), _F.pad(m.bool(), (0, L - m.shape[1]), value=False)

    (h_c, m_c), (h_u, m_u) = pad(h_c, m_c), pad(h_u, m_u)
    eps = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([h_c, h_u]), torch.cat([m_c, m_u]))
    eps_c, eps_u = eps.chunk(2)
    return eps_u + guidance_scale * (eps_c - eps_u)


class _GraderCrossAttention(nn.Module):
    def __init__(self, query_dim: int, context_dim: int, n_heads: int):
        super().__init__()
        if query_dim % n_heads:
            raise ValueError(f"CrossAttention: query_dim {query_dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.q = nn.Linear(query_dim, query_dim)
        self.k = nn.Linear(context_dim, query_dim)
        self.v = nn.Linear(context_dim, query_dim)
        self.out = nn.Linear(query_dim, query_dim)

    def forward(self, x, context, mask=None):
        B, N, D = x.shape
        L, H = context.shape[1], self.n_heads
        q = self.q(x).view(B, N, H, D // H).transpose(1, 2)
        k = self.k(context).view(B, L, H, D // H).transpose(1, 2)
        v = self.v(context).view(B, L, H, D // H).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // H)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
        return self.out((scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, D))


_MISSING = object()


@_contextmanager
def _replaced(ns, **objects):
    """The student's module with some of its names bound to the grader's objects, restored afterwards."""
    saved = {k: getattr(ns, k, _MISSING) for k in objects}
    for k, v in objects.items():
        setattr(ns, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is _MISSING:
                delattr(ns, k)
            else:
                setattr(ns, k, v)


# ---- helpers -----------------------------------------------------------------------------------------------

def _error_name(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the student's exception is the observation
        return {"type": "ValueError" if isinstance(e, ValueError) else type(e).__name__, "message": str(e)[:200]}
    return None


def _grad(p):
    g = getattr(p, "grad", None)
    return None if g is None else g.detach().clone()


def _keys(module):
    return [[str(k), list(v.shape)] for k, v in module.state_dict().items()]


def _strict_load(module, state):
    """Load the reference's state dict strictly; the error (missing / unexpected keys, shapes) or None."""
    try:
        module.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)
    except Exception as e:  # noqa: BLE001 - a layout that does not fit is the observation
        return f"{type(e).__name__}: {str(e)[:300]}"
    return None


# ---- Part A ------------------------------------------------------------------------------------------------

def encode_cases(ns, meta, seed, cases):
    """encode_prompts for each {prompts, max_len (None: the default), dtype}; an exception is reported per case."""
    tok = _tokenizer(meta)
    models = {}
    out = []
    for case in cases:
        dtype = case.get("dtype", "float32")
        if dtype not in models:
            models[dtype] = _text_model(seed, dtype)
        kwargs = {} if case.get("max_len") is None else {"max_len": case["max_len"]}
        try:
            hidden, mask = ns.encode_prompts(list(case["prompts"]), tok, models[dtype], **kwargs)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which names it
            out.append({"error": f"{type(e).__name__}: {str(e)[:200]}"})
            continue
        if not isinstance(hidden, torch.Tensor) or not isinstance(mask, torch.Tensor):
            out.append({"error": f"returned ({type(hidden).__name__}, {type(mask).__name__}), not two tensors"})
            continue
        out.append({"hidden": hidden.detach(), "mask": mask.detach(),
                    "requires_grad": bool(hidden.requires_grad or hidden.grad_fn is not None)})
    return out


def null_cond(ns, hidden, mask):
    h0, m0 = hidden.clone(), mask.clone()
    out = ns.null_condition(hidden, mask)
    return {"out": out, "inputs_unchanged": bool(torch.equal(hidden, h0) and torch.equal(mask, m0))}


def drop(ns, hidden, mask, p, seed=None, draws_after=4):
    """drop_condition under a generator seeded with ``seed`` (None: no generator); what the generator draws next."""
    g = None if seed is None else torch.Generator().manual_seed(seed)
    h0, m0 = hidden.clone(), mask.clone()
    out = ns.drop_condition(hidden, mask, p, g) if g is not None else ns.drop_condition(hidden, mask, p)
    return {"out": out, "inputs_unchanged": bool(torch.equal(hidden, h0) and torch.equal(mask, m0)),
            "next": None if g is None else torch.rand(draws_after, generator=g)}


# ---- Part B ------------------------------------------------------------------------------------------------

def reparam(ns, mu, logvar, seed, weight):
    """z = reparameterize(mu, logvar, generator) (None: no generator) and the gradients of sum(weight * z)."""
    mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    if seed is None:
        z = ns.reparameterize(mu, logvar)
    else:
        z = ns.reparameterize(mu, logvar, torch.Generator().manual_seed(seed))
    if not isinstance(z, torch.Tensor):
        return {"z": z}
    grads = {"mu": None, "logvar": None}
    if z.requires_grad and z.shape == weight.shape:
        (z * weight).sum().backward()
        grads = {"mu": _grad(mu), "logvar": _grad(logvar)}
    return {"z": z.detach(), "grad_mu": grads["mu"], "grad_logvar": grads["logvar"]}


# ---- Part C ------------------------------------------------------------------------------------------------

def cross(ns, query_dim, context_dim, n_heads, state, x, context, masks):
    """The student's CrossAttention with the reference's weights (strict load), on each mask (None included)."""
    layer = ns.CrossAttention(query_dim, context_dim, n_heads)
    obs = {"keys": _keys(layer), "n_heads": getattr(layer, "n_heads", None)}
    obs["n_heads"] = obs["n_heads"] if isinstance(obs["n_heads"], int) else repr(obs["n_heads"])[:40]
    obs["load_error"] = _strict_load(layer, state)
    if obs["load_error"]:
        return obs
    with torch.no_grad():
        obs["outs"] = [layer(x, context, m) if m is not None else layer(x, context) for m in masks]
        obs["out_mask_none"] = layer(x, context, None)
    return obs


def cross_error(ns, query_dim, context_dim, n_heads):
    return _error_name(lambda: ns.CrossAttention(query_dim, context_dim, n_heads))


def patches(ns, z, p, tokens, shape):
    C, H, W = shape
    t = ns.patchify(z, p)
    back = ns.unpatchify(tokens, p, C, H, W)
    return {"patchify": t, "unpatchify": back, "round_trip": ns.unpatchify(ns.patchify(z, p), p, C, H, W),
            "round_trip_tokens": ns.patchify(ns.unpatchify(tokens, p, C, H, W), p)}


def dit_block(ns, dim, context_dim, n_heads, mlp_ratio, seed, state, x, c, context, mask, context_moved):
    """The student's DiTBlock (built with the grader's CrossAttention) at its own initialisation, then with the
    reference's weights (strict load)."""
    args = (dim, context_dim, n_heads) if mlp_ratio is None else (dim, context_dim, n_heads, mlp_ratio)
    with _replaced(ns, CrossAttention=_GraderCrossAttention):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            block = ns.DiTBlock(*args)
    obs = {"keys": _keys(block)}
    sd = block.state_dict()
    obs["ada_max"] = [float(sd[k].abs().max()) if k in sd and sd[k].numel() else None for k in ("ada.1.weight", "ada.1.bias")]
    with torch.no_grad():
        obs["init_out"] = block(x, c, context, mask)
    obs["load_error"] = _strict_load(block, state)
    if obs["load_error"]:
        return obs
    with torch.no_grad():
        obs["out"] = block(x, c, context, mask)
        obs["out_moved"] = block(x, c, context_moved, mask)
        obs["out_small"] = block(x * 1e-3, c, context, mask)
    return obs


# ---- Part D ------------------------------------------------------------------------------------------------

def _calls(model):
    return [{"batch": r["batch"], "L": r["L"]} for r in model.records]


def cfg(ns, seed, x, t, cond, uncond, guidance_scale):
    """The student's cfg_noise_prediction with the stand-in denoiser, and the calls the denoiser saw."""
    model = _Denoiser(seed, x.shape[1], x.shape[-1], cond[0].shape[-1])
    out = ns.cfg_noise_prediction(model, x, t, tuple(cond), tuple(uncond), guidance_scale)
    return {"out": out, "calls": _calls(model)}


def sample(ns, seed, channels, size, context_dim, prompts, kwargs, gen_seed, repeat=False):
    """The student's sample with the stand-in denoiser, decoder and prompt encoder (and the grader's guidance
    helpers); the latents and timesteps the denoiser was fed, call by call."""
    runs = []
    with _replaced(ns, cfg_noise_prediction=_grader_cfg_noise_prediction, null_condition=_grader_null_condition):
        for _ in range(2 if repeat else 1):
            model, vae, encode = _Denoiser(seed, channels, size, context_dim), _Decoder(seed, channels), _Encoder(seed, context_dim)
            out = ns.sample(model, vae, encode, list(prompts), generator=torch.Generator().manual_seed(gen_seed), **kwargs)
            runs.append({"out": out, "calls": _calls(model), "z": [r["z"] for r in model.records],
                         "t": [r["t"] for r in model.records]})
    return runs


# ---- Part E ------------------------------------------------------------------------------------------------

def clip(ns, image_emb, text_emb, logit_scale, scale_is_tensor):
    """clip_loss both ways round, and the gradients of the first with respect to both inputs (and the scale)."""
    img, txt = image_emb.clone().requires_grad_(True), text_emb.clone().requires_grad_(True)
    scale = torch.tensor(float(logit_scale), requires_grad=True) if scale_is_tensor else float(logit_scale)
    loss = ns.clip_loss(img, txt, scale)
    obs = {"loss": loss.detach() if isinstance(loss, torch.Tensor) else loss,
           "requires_grad": bool(isinstance(loss, torch.Tensor) and loss.requires_grad)}
    if obs["requires_grad"] and loss.numel() == 1:
        loss.sum().backward()
        obs.update(grad_image=_grad(img), grad_text=_grad(txt), grad_scale=_grad(scale) if scale_is_tensor else None)
    with torch.no_grad():
        swapped = ns.clip_loss(text_emb.clone(), image_emb.clone(), scale.detach() if scale_is_tensor else scale)
    obs["swapped"] = swapped.detach() if isinstance(swapped, torch.Tensor) else swapped
    return obs
