"""HW4 hidden suite, Part C: cross-attention and the DiT block under the reference's weights (loaded strictly by
the documented names, then every weight randomised -- adaLN's included), against the reference and torch's
scaled_dot_product_attention; patches and timestep features against the reference.

The DiT block is built with the grader's own CrossAttention (``probes._GraderCrossAttention``), so a bug in the
student's CrossAttention costs the cross-attention test only."""
import math

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, expect, expect_close, expect_equal, graded, randint, reference
from genai_course.grading.api import diagnose

ref = reference("hw4")


def _randomise(module, g):
    """Every parameter of the reference module random (matrices scaled by 1/sqrt(fan-in), vectors small); the
    state dict to send."""
    with torch.no_grad():
        for _, p in module.named_parameters():
            if p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _keys(module):
    return [[k, list(v.shape)] for k, v in module.state_dict().items()]


def _pairs(keys):
    """(key, shape) pairs in a fixed order, for comparing layouts."""
    return sorted((str(k), tuple(int(n) for n in shape)) for k, shape in keys)


def _mask_rows(g, B, L, kind):
    if kind == "one":
        mask = torch.zeros(B, L, dtype=torch.bool)
        mask[torch.arange(B), torch.randint(0, L, (B,), generator=g)] = True
        mask[0] = False
        mask[0, 0] = True
        return mask
    mask = torch.rand(B, L, generator=g) < 0.6
    mask[torch.arange(B), torch.randint(0, L, (B,), generator=g)] = True
    mask[-1] = True
    return mask


def _sdpa(layer, x, context, mask):
    B, N, D = x.shape
    H = layer.n_heads
    split = lambda y: y.view(B, y.shape[1], H, D // H).transpose(1, 2)  # noqa: E731
    with torch.no_grad():
        out = F.scaled_dot_product_attention(split(layer.q(x)), split(layer.k(context)), split(layer.v(context)),
                                             attn_mask=None if mask is None else mask[:, None, None, :])
        return layer.out(out.transpose(1, 2).reshape(B, N, D))


def _heads_last(layer, x, context, mask):
    """The bug of splitting features as (d_h, H) instead of (H, d_h)."""
    B, N, D = x.shape
    H = layer.n_heads
    split = lambda y: y.view(B, y.shape[1], D // H, H).permute(0, 3, 1, 2)  # noqa: E731
    with torch.no_grad():
        out = F.scaled_dot_product_attention(split(layer.q(x)), split(layer.k(context)), split(layer.v(context)),
                                             attn_mask=None if mask is None else mask[:, None, None, :])
        return layer.out(out.permute(0, 2, 3, 1).reshape(B, N, D))


def _scaled(layer, x, context, mask, scale):
    B, N, D = x.shape
    H = layer.n_heads
    split = lambda y: y.view(B, y.shape[1], H, D // H).transpose(1, 2)  # noqa: E731
    with torch.no_grad():
        out = F.scaled_dot_product_attention(split(layer.q(x)), split(layer.k(context)), split(layer.v(context)),
                                             attn_mask=None if mask is None else mask[:, None, None, :], scale=scale)
        return layer.out(out.transpose(1, 2).reshape(B, N, D))


# ---- C.1 CrossAttention ----------------------------------------------------------------------------------------

@graded(points=4, timeout=20)
def test_cross_attention(student):
    """CrossAttention: q, k, v, out by name; with the reference's weights equals the reference and SDPA (padding masks, one valid key, mask=None); ValueError"""
    g = student.rng()
    checks = Checks()
    h = randint(g, 2, 4)
    configs = [(h * randint(g, 2, 5), randint(g, 3, 9), h), (randint(g, 3, 8), randint(g, 3, 9), 1)]
    for qd, cd, H in configs:
        B, N, L = randint(g, 2, 4), randint(g, 3, 6), randint(g, 4, 8)
        layer = ref.CrossAttention(qd, cd, H)
        state = _randomise(layer, g)
        x, context = torch.randn(B, N, qd, generator=g), torch.randn(B, L, cd, generator=g)
        masks = {"a padding mask": _mask_rows(g, B, L, "pad"), "one valid context position per row": _mask_rows(g, B, L, "one"),
                 "mask=None": None, "an all-True mask": torch.ones(B, L, dtype=torch.bool)}
        name = f"CrossAttention({qd}, {cd}, n_heads={H})"
        got = {}
        with checks.case(f"{name}: q, k, v, out with the documented shapes, the reference's weights load strictly"):
            got = student.probe("cross", query_dim=qd, context_dim=cd, n_heads=H, state=state, x=x, context=context,
                                masks=list(masks.values()))
            expect_equal(_pairs(got["keys"]), _pairs(_keys(layer)), f"the (key, shape) pairs of {name}.state_dict()",
                         hint="self.q = nn.Linear(query_dim, query_dim), self.k / self.v = nn.Linear(context_dim, query_dim), "
                              "self.out = nn.Linear(query_dim, query_dim), all with bias; nothing else with weights")
            expect(got["load_error"] is None, name, f"did not load the reference's state dict: {got['load_error']}")
            expect(got["n_heads"] == H, f"{name}.n_heads", f"is {got['n_heads']!r}", hint="self.n_heads = n_heads")
        for i, (label, mask) in enumerate(list(masks.items())[:3]):
            with checks.case(f"{name}: {label}"):
                what = f"{name}(x {(B, N, qd)}, context {(B, L, cd)}, {label}) with the reference's weights"
                expect("outs" in got, what, "could not be run: see the first case of this layer" if not got else
                       f"could not be run: the reference's weights did not load ({got.get('load_error')})")
                out = got["outs"][i]
                with torch.no_grad():
                    want = layer(x, context, mask)
                hint = diagnose(out, {
                    "scale the scores by 1 / sqrt(d_h), d_h = query_dim // n_heads (not 1 / sqrt(query_dim))":
                        _scaled(layer, x, context, mask, 1 / math.sqrt(qd)),
                    "the mask was ignored: masked context positions must get -inf scores before the softmax":
                        _sdpa(layer, x, context, None),
                    "head h uses features h*d_h .. (h+1)*d_h - 1: view(B, N, H, d_h), not (B, N, d_h, H)":
                        _heads_last(layer, x, context, mask)},
                    default="softmax over the L context positions of q k^T / sqrt(d_h), masked where mask is False")
                expect_close(out, want, what, atol=1e-5, rtol=1e-4, hint=hint)
                expect_close(out, _sdpa(layer, x, context, mask), f"{what} against F.scaled_dot_product_attention",
                             atol=1e-5, rtol=1e-4, hint=hint)
                if mask is None:
                    expect_close(got["outs"][3], out, f"{name}(x, context, an all-True mask) against mask=None",
                                 atol=1e-5, rtol=1e-4, hint="mask=None means every position may be attended to")
                    expect_close(got["out_mask_none"], out, f"{name}(x, context, None) against {name}(x, context)",
                                 atol=1e-5, rtol=1e-4, hint="mask defaults to None")
    qd, H = randint(g, 2, 5) * 4 + 2, 4
    with checks.case(f"ValueError when query_dim is not divisible by n_heads ({qd} by {H})"):
        err = student.probe("cross_error", query_dim=qd, context_dim=6, n_heads=H)
        expect(err is not None and err["type"] == "ValueError", f"CrossAttention({qd}, 6, n_heads={H})",
               f"raised {err['type']}: {err['message'][:150]}" if err else "did not raise",
               hint="raise ValueError when query_dim % n_heads != 0")
    return checks


# ---- C.2 patchify / unpatchify ---------------------------------------------------------------------------------

def _channels_first(z, p):
    B, C, H, W = z.shape
    return z.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), p * p * C)


def _column_major(z, p):
    B, C, H, W = z.shape
    return z.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 3, 5, 1).reshape(B, (H // p) * (W // p), p * p * C)


@graded(points=2, timeout=15)
def test_patchify(student):
    """patchify / unpatchify: exactly the reference's token and feature order for several (C, H, W, p), non-square included; inverses"""
    g = student.rng()
    checks = Checks()
    cases = [(2, 4, 8, 8, 2), (1, 3, 2 * randint(g, 2, 4), 2 * randint(g, 5, 7), 2), (2, 2, 9, 3 * randint(g, 1, 3), 3),
             (1, randint(g, 2, 5), 4, 8, 4), (2, 3, 5, 4, 1)]
    for B, C, H, W, p in cases:
        with checks.case(f"(B, C, H, W) = {(B, C, H, W)}, p={p}"):
            z = torch.randn(B, C, H, W, generator=g)
            tokens = torch.randn(B, (H // p) * (W // p), p * p * C, generator=g)
            got = student.probe("patches", z=z, p=p, tokens=tokens, shape=[C, H, W])
            want = ref.patchify(z, p)
            expect_equal(got["patchify"], want, f"patchify(z {(B, C, H, W)}, p={p})", hint=diagnose(got["patchify"], {
                "inside a token, features go pixel row, pixel column, then channel (channel fastest), not channel first":
                    _channels_first(z, p),
                "tokens go along a row of patches first (token = patch_row * (W // p) + patch_col)": _column_major(z, p)},
                default="(B, (H//p) * (W//p), p * p * C): reshape (B, C, H/p, p, W/p, p), permute to (B, H/p, W/p, p, p, C)"))
            expect_equal(got["unpatchify"], ref.unpatchify(tokens, p, C, H, W),
                         f"unpatchify(tokens {tuple(tokens.shape)}, p={p}, C={C}, H={H}, W={W})",
                         hint="the exact inverse of patchify: reshape (B, H/p, W/p, p, p, C), permute to (B, C, H/p, p, W/p, p)")
            expect_equal(got["round_trip"], z, f"unpatchify(patchify(z {(B, C, H, W)}, p={p}), ...)",
                         hint="unpatchify must undo patchify exactly")
            expect_equal(got["round_trip_tokens"], tokens, f"patchify(unpatchify(tokens {tuple(tokens.shape)}, ...), p={p})",
                         hint="patchify must undo unpatchify exactly")
    return checks


# ---- C.3 timestep_embedding ------------------------------------------------------------------------------------

def _temb(t, dim, max_period=10000.0, sin_first=False, denom=None):
    half = dim // 2
    w = max_period ** (-torch.arange(half, dtype=torch.float64) / (denom or half))
    a = t.double()[:, None] * w[None]
    return torch.cat([a.sin(), a.cos()] if sin_first else [a.cos(), a.sin()], -1).float()


@graded(points=2, timeout=15)
def test_timestep_embedding(student):
    """timestep_embedding: the reference's [cos, sin] features for int and float t, several dims and max_period; float32"""
    g = student.rng()
    checks = Checks()
    ints = torch.cat([torch.tensor([0, 999]), torch.randint(1, 999, (4,), generator=g)])
    floats = torch.tensor([0.5, float(randint(g, 1, 99)) + 0.25, float(randint(g, 100, 990)) + 0.75])
    mp = float((100, 1000, 500)[randint(g, 0, 2)])
    cases = [("int64 t, dim=128", ints, 128, None), ("float32 t, dim=32", floats, 32, None),
             ("float64 t, dim=6", floats.double(), 6, None), (f"int64 t, dim=8, max_period={mp:g}", ints, 8, mp),
             (f"float32 t, dim=20, max_period={2 * mp:g}", floats, 20, 2 * mp)]
    for label, t, dim, max_period in cases:
        with checks.case(label):
            args = (t, dim) if max_period is None else (t, dim, max_period)
            got = student.call("timestep_embedding", *args)
            want = ref.timestep_embedding(*args)
            what = f"timestep_embedding(t of shape {tuple(t.shape)} ({str(t.dtype)[6:]}), dim={dim}" + \
                   ("" if max_period is None else f", max_period={max_period:g}") + ")"
            expect(isinstance(got, torch.Tensor) and got.dtype == torch.float32, what,
                   f"returned {getattr(got, 'dtype', type(got).__name__)}, not float32", hint="(B, dim) float32")
            mpv = 10000.0 if max_period is None else max_period
            expect_close(got, want, what, atol=5e-4, rtol=0, hint=diagnose(got, {
                "cosines first, then sines: [cos(t w), sin(t w)]": _temb(t, dim, mpv, sin_first=True),
                "w_i = max_period ** (-i / (dim // 2)), i = 0 .. dim//2 - 1 (divide by dim // 2, not dim // 2 - 1)":
                    _temb(t, dim, mpv, denom=dim // 2 - 1) if dim > 2 else None,
                "use the max_period argument (10000 is only its default)": _temb(t, dim, 10000.0),
                "w_i = max_period ** (-i / (dim // 2)), not max_period ** (-2i / dim) over dim frequencies":
                    _temb(t, dim, mpv, denom=dim)}, atol=5e-4, rtol=0,
                default="w_i = max_period ** (-i / (dim // 2)); angles t[:, None] * w[None]; cat([cos, sin], -1)"))
    return checks


# ---- C.4 DiTBlock ----------------------------------------------------------------------------------------------

@graded(points=5, timeout=30)
def test_dit_block(student):
    """DiTBlock: the reference's state-dict keys; exactly the identity at init (adaLN-zero); with random weights equals the reference under a padding mask"""
    g = student.rng()
    checks = Checks()
    h = randint(g, 2, 4)
    configs = [(h * randint(g, 3, 5), randint(g, 4, 10), h, (1.5, 2.0, 3.0)[randint(g, 0, 2)]),
               (2 * randint(g, 3, 6), randint(g, 4, 10), 2, None)]
    for dim, cd, H, ratio in configs:
        B, N, L = randint(g, 2, 4), randint(g, 3, 6), randint(g, 3, 7)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(randint(g, 0, 2**31))
            block = ref.DiTBlock(dim, cd, H) if ratio is None else ref.DiTBlock(dim, cd, H, ratio)
        keys = _keys(block)
        state = _randomise(block, g)
        x, c = torch.randn(B, N, dim, generator=g), torch.randn(B, dim, generator=g)
        context = torch.randn(B, L, cd, generator=g)
        mask = torch.arange(L)[None] < torch.randint(1, L + 1, (B,), generator=g)[:, None]
        mask[0] = True
        mask[-1, 1:] = False
        moved = torch.where(mask[..., None], context, 10 * torch.randn(B, L, cd, generator=g))
        name = f"DiTBlock({dim}, {cd}, {H}" + ("" if ratio is None else f", mlp_ratio={ratio:g}") + ")"
        got = {}
        with checks.case(f"{name}: the state dict's keys and shapes are the reference's"):
            got = student.probe("dit_block", dim=dim, context_dim=cd, n_heads=H, mlp_ratio=ratio, seed=randint(g, 0, 2**31),
                                state=state, x=x, c=c, context=context, mask=mask, context_moved=moved)
            expect_equal(_pairs(got["keys"]), _pairs(keys), f"the (key, shape) pairs of {name}.state_dict()",
                         hint="norm1..3 without affine parameters, attn = nn.MultiheadAttention(dim, n_heads, batch_first=True), "
                              "cross = CrossAttention(dim, context_dim, n_heads), mlp = Sequential(Linear(dim, int(dim * "
                              "mlp_ratio)), GELU, Linear(hidden, dim)), ada = Sequential(SiLU, Linear(dim, 9 * dim)); mlp_ratio "
                              "defaults to 4.0")
        with checks.case(f"{name}: a fresh block is exactly the identity (adaLN-zero)"):
            expect(bool(got), name, "could not be built or run: see the first case of this block")
            expect(got["ada_max"] == [0.0, 0.0], f"{name}.ada[1]",
                   f"is not zero at initialisation (max |weight|, max |bias| = {got['ada_max']})",
                   hint="nn.init.zeros_ on the weight AND the bias of ada's Linear")
            expect(isinstance(got["init_out"], torch.Tensor) and torch.equal(got["init_out"], x),
                   f"a fresh {name}(x {(B, N, dim)}, c, context {(B, L, cd)}, mask)", "is not exactly x",
                   hint="every gate comes from ada(c) and is 0 at initialisation: x + 0 * f(...) == x")
        with torch.no_grad():
            want, want_small = block(x, c, context, mask), block(x * 1e-3, c, context, mask)
        hint = ("ada(c).chunk(9, dim=-1) = (shift, scale, gate) for self-attention, cross-attention, MLP in that order; "
                "x = x + gate[:, None] * f(modulate(norm(x), shift, scale)) one sub-layer after the other; the "
                "cross-attention gets the prompt's mask; GELU(approximate='tanh')")
        loaded = lambda: expect(  # noqa: E731
            "out" in got, name, "could not be built or run: see the first case of this block" if not got
            else f"did not load the reference's state dict strictly: {got.get('load_error')}",
            hint="the attributes the docstring lists, with those names and shapes")
        with checks.case(f"{name} with random weights (ada included), x {(B, N, dim)}, context {(B, L, cd)} with a padding mask"):
            loaded()
            expect_close(got["out"], want, f"{name}(x, c, context, mask) with the reference's weights", atol=1e-4, rtol=1e-4,
                         hint=hint)
        with checks.case(f"{name}: context at masked positions does not change the output"):
            loaded()
            expect_close(got["out_moved"], got["out"], f"{name}(x, c, context, mask) when only masked context positions change",
                         atol=1e-5, rtol=1e-5, hint="pass mask to self.cross: padded prompt positions must not be attended to")
        with checks.case(f"{name}: tokens of small magnitude (LayerNorm's eps matters)"):
            loaded()
            expect_close(got["out_small"], want_small, f"{name}(x * 1e-3, c, context, mask) with the reference's weights",
                         atol=1e-4, rtol=1e-4, hint="nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)")
    return checks
