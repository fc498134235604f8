"""Public checks of HW4, run by `genai-course check hw4.ipynb`: one or more per graded definition, on small
inputs whose answers follow from the docstrings (a one-layer BERT with a word-level vocabulary instead of
MiniLM, layers with given weights, numbered latents, a stand-in denoiser whose prediction is a known formula).
Every expected value is computed here from the formulas in the docstrings; when a result is wrong, the check
names the common bug it matches. The hidden suite compares everything with the reference on other inputs."""
import math

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, Fail, expect, expect_close, expect_equal, graded
from genai_course.grading.api import diagnose


def _bug(description: str) -> str:
    return f"this looks like a known bug: {description}"


def _random(shapes: dict, seed: int, scale: float = 1.0) -> dict:
    """Weights for the given parameter shapes: matrices ~ N(0, 1/fan_in), vectors ~ N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in shapes.items():
        if len(s) == 1:
            out[k] = 0.1 * torch.randn(s, generator=g)
        else:
            out[k] = scale * torch.randn(s, generator=g) / math.sqrt(s[-1])
    return out


def _pair_of_tensors(got, what: str, hint: str):
    expect(isinstance(got, (list, tuple)) and len(got) == 2 and all(isinstance(v, torch.Tensor) for v in got), what,
           f"returned {type(got).__name__}, not a pair of tensors", hint=hint)
    return got


# ------------------------------------------------------------------------------------------------------------------
# Part A: encode_prompts, null_condition, drop_condition

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "green", "blue", "yellow", "in", "the", "top",
         "bottom", "left", "right", "at", "digit", *[str(d) for d in range(10)]]
BERT = {"vocab_size": len(WORDS), "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 32}


def _bert_state(seed: int) -> dict:
    D, F_, V = BERT["hidden_size"], BERT["intermediate_size"], BERT["vocab_size"]
    shapes = {"embeddings.word_embeddings.weight": [V, D], "embeddings.position_embeddings.weight": [32, D],
              "embeddings.token_type_embeddings.weight": [2, D]}
    p = "encoder.layer.0."
    for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        shapes.update({f"{p}{name}.weight": [D, D], f"{p}{name}.bias": [D]})
    shapes.update({f"{p}intermediate.dense.weight": [F_, D], f"{p}intermediate.dense.bias": [F_],
                   f"{p}output.dense.weight": [D, F_], f"{p}output.dense.bias": [D]})
    state = _random(shapes, seed, scale=2.0)
    for ln in ("embeddings.LayerNorm", f"{p}attention.output.LayerNorm", f"{p}output.LayerNorm"):
        state[f"{ln}.weight"], state[f"{ln}.bias"] = 1 + 0.1 * torch.arange(D) / D, 0.01 * torch.arange(D).float()
    return state


def _ids(prompts, max_len):
    """Word-level tokens with [CLS] and [SEP], cut to max_len tokens, right-padded with [PAD] to the longest."""
    vocab = {w: i for i, w in enumerate(WORDS)}
    rows = [[vocab["[CLS]"], *[vocab.get(w, vocab["[UNK]"]) for w in p.lower().split()][:max_len - 2], vocab["[SEP]"]]
            for p in prompts]
    L = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (L - len(r)) for r in rows])
    mask = torch.tensor([[True] * len(r) + [False] * (L - len(r)) for r in rows])
    return ids, mask


def _bert_forward(state, ids, keep):
    """BERT's last hidden states (post-LayerNorm, exact GELU, eps 1e-12), keys where keep is False ignored."""
    B, L = ids.shape
    D, H = BERT["hidden_size"], BERT["num_attention_heads"]
    ln = lambda h, n: F.layer_norm(h, (D,), state[f"{n}.weight"], state[f"{n}.bias"], eps=1e-12)  # noqa: E731
    lin = lambda h, n: F.linear(h, state[f"{n}.weight"], state[f"{n}.bias"])  # noqa: E731
    h = ln(state["embeddings.word_embeddings.weight"][ids] + state["embeddings.position_embeddings.weight"][:L]
           + state["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    p = "encoder.layer.0."
    heads = [lin(h, f"{p}attention.self.{n}").view(B, L, H, D // H).transpose(1, 2) for n in ("query", "key", "value")]
    logits = heads[0] @ heads[1].transpose(-1, -2) / math.sqrt(D // H)
    logits = logits.masked_fill(~keep[:, None, None, :], float("-inf"))
    ctx = (logits.softmax(-1) @ heads[2]).transpose(1, 2).reshape(B, L, D)
    h = ln(h + lin(ctx, f"{p}attention.output.dense"), f"{p}attention.output.LayerNorm")
    return ln(h + lin(F.gelu(lin(h, f"{p}intermediate.dense")), f"{p}output.dense"), f"{p}output.LayerNorm")


@graded(points=1)
def check_encode_prompts(student):
    """encode_prompts: a tiny BERT's last hidden states (float32) and a bool mask, padded to the longest, cut at max_len"""
    state = _bert_state(0)
    checks = Checks()
    cases = {"two prompts, padded to the longer": (["a red 3 in the top left", "a 3"], 24, False),
             "max_len = 6 cuts the long prompt": (["a blue 7 at the bottom right", "green 0"], 6, False),
             "a float64 text model": (["a yellow 5", "the digit 9 in blue"], 24, True)}
    for label, (prompts, max_len, double) in cases.items():
        with checks.case(label):
            ids, keep = _ids(prompts, max_len)
            want = _bert_forward(state, ids, keep)
            got = student.probe("encode", words=WORDS, config=BERT, state=state, prompts=prompts, max_len=max_len,
                                double=double)
            what = f"encode_prompts({prompts!r}, tokenizer, one-layer BERT, max_len={max_len})"
            hidden, mask = _pair_of_tensors(got["out"], what, "return (hidden, mask)")
            B, L = keep.shape
            if tuple(hidden.shape[:2]) != (B, L) and hidden.ndim == 3:
                hint = ("pad to the longest prompt (padding=True), not to max_length" if hidden.shape[1] == max_len
                        else "cut prompts at max_len tokens: truncation=True, max_length=max_len"
                        if hidden.shape[1] > max_len else None)
                raise Fail(f"{what}: hidden has shape {tuple(hidden.shape)}, expected {(B, L, 16)}"
                           + (f"\n    Hint: {hint}" if hint else ""))
            expect_equal(mask, keep, f"the mask of {what}", hint=diagnose(mask, {
                "the mask is inverted: True on real tokens, False on padding": ~keep},
                default="the tokenizer's attention_mask as bool: .bool()"))
            expect(hidden.dtype == torch.float32, f"the hidden states of {what}", f"have dtype {hidden.dtype}",
                   hint="return last_hidden_state.float()")
            real = keep[..., None].float()
            expect_close(hidden * real, want * real, f"the hidden states of {what} (on real tokens)", atol=1e-4,
                         hint=diagnose(hidden * real, {
                             "the text model was run without the attention mask, so real tokens attend to padding":
                                 _bert_forward(state, ids, torch.ones_like(keep)) * real},
                             default="text_model(input_ids=..., attention_mask=...).last_hidden_state"))
            expect(not got["requires_grad"], f"the hidden states of {what}", "require grad",
                   hint="the text encoder is frozen: keep the @torch.no_grad() decorator")
    return checks


@graded(points=1)
def check_null_and_drop_condition(student):
    """null_condition: zeros shaped like hidden, mask True at position 0 only; drop_condition: u = rand(B) < p drops"""
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(6, 4, 3, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True] * k + [False] * (4 - k) for k in (4, 2, 3, 1, 4, 2)])
    null_mask = torch.arange(4).expand(6, 4) == 0  # True in column 0 only
    checks = Checks()
    with checks.case("null_condition"):
        got = student.probe("null_and_drop", hidden=hidden, mask=mask)
        what = "null_condition(hidden (6, 4, 3) float64, mask (6, 4))"
        nh, nm = _pair_of_tensors(got["out"], what, "return (null_hidden, null_mask)")
        expect_equal(nh, torch.zeros_like(hidden), f"null_hidden of {what}",
                     hint="torch.zeros_like(hidden): same shape, dtype and device")
        expect_equal(nm, null_mask, f"null_mask of {what}", hint=diagnose(nm, {
            "an all-False mask makes every attention over the null prompt 0/0 = NaN: keep position 0 valid":
                torch.zeros(6, 4, dtype=torch.bool),
            "the null mask is True at position 0 only, whatever the prompt's mask was":
                mask | null_mask,
            "the null mask is True at position 0 only, not everywhere": torch.ones(6, 4, dtype=torch.bool)},
            default="a (B, L) bool mask, True in column 0 and False elsewhere"))
        expect(got["inputs_unchanged"], what, "changed its inputs", hint="return new tensors")
    for p, seed in ((0.5, 3), (1.0, 4), (0.0, 5)):
        with checks.case(f"drop_condition p={p}"):
            drop = torch.rand(6, generator=torch.Generator().manual_seed(seed)) < p
            want = (torch.where(drop[:, None, None], torch.zeros_like(hidden), hidden),
                    torch.where(drop[:, None], null_mask, mask))
            flipped = ~drop
            wrong_way = (torch.where(flipped[:, None, None], torch.zeros_like(hidden), hidden),
                         torch.where(flipped[:, None], null_mask, mask))
            got = student.probe("null_and_drop", hidden=hidden, mask=mask, p=p, seed=seed)
            what = f"drop_condition(hidden, mask, p={p}, torch.Generator().manual_seed({seed}))"
            out = _pair_of_tensors(got["out"], what, "return (hidden', mask')")
            hint = diagnose(list(out), {"an example is dropped when u[i] < p, not when u[i] > p (or >= p)":
                                        list(wrong_way)},
                            default="u = torch.rand(B, generator=generator, device=hidden.device), drawn once; "
                                    f"here it drops examples {drop.nonzero().flatten().tolist()}")
            expect_equal(out[0], want[0], f"hidden' of {what}", hint=hint)
            expect_equal(out[1], want[1], f"mask' of {what}", hint=diagnose(list(out), {
                "an example is dropped when u[i] < p, not when u[i] > p (or >= p)": list(wrong_way)},
                default="a dropped example gets null_condition's mask (True at position 0 only): if the "
                        "null_condition case fails, fix that first"))
            expect(got["inputs_unchanged"], what, "changed its inputs in place",
                   hint=_bug("return new tensors (torch.where): the caller's batch must stay as it was"))
    return checks


# ------------------------------------------------------------------------------------------------------------------
# Part B: vae_loss, reparameterize

def _kl(mu, logvar):
    return 0.5 * (mu ** 2 + logvar.exp() - logvar - 1)


@graded(points=1)
def check_vae_loss(student):
    """vae_loss: rec = batch mean of per-image sums of squares; kl = batch mean of per-image summed KL; loss = rec + beta kl"""
    g = torch.Generator().manual_seed(2)
    x, recon = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    mu, logvar = torch.randn(2, 4, 2, 2, generator=g), 0.5 * torch.randn(2, 4, 2, 2, generator=g)
    beta = 0.3
    per_image = lambda v: v.flatten(1).sum(1)  # noqa: E731
    rec, kl = per_image((recon - x) ** 2).mean(), per_image(_kl(mu, logvar)).mean()
    got = student.call("vae_loss", x, recon, mu, logvar, 0.3)
    what = "vae_loss(x (2, 3, 4, 4), recon, mu (2, 4, 2, 2), logvar, beta=0.3)"
    expect(isinstance(got, (list, tuple)) and len(got) == 3 and all(isinstance(v, torch.Tensor) for v in got), what,
           f"returned {type(got).__name__}", hint="the docstring asks for a tuple (loss, rec, kl) of 0-d tensors")
    got_loss, got_rec, got_kl = got
    expect_close(got_rec, rec, f"rec of {what}", hint=diagnose(got_rec, {
        "rec is averaged over pixels (F.mse_loss); sum over each image's pixels, then average over the batch":
            ((recon - x) ** 2).mean(),
        "rec is summed over the batch; take the mean over images": per_image((recon - x) ** 2).sum()}))
    expect_close(got_kl, kl, f"kl of {what}", hint=diagnose(got_kl, {
        "the KL has the wrong sign: 0.5 * (mu^2 + exp(logvar) - logvar - 1) is >= 0": -kl,
        "the KL is averaged over latent entries; sum them per image, then average over the batch":
            _kl(mu, logvar).mean(),
        "the KL is summed over the batch too; average the per-image sums": per_image(_kl(mu, logvar)).sum(),
        "the KL lost its factor 0.5": 2 * kl,
        "logvar is log sigma^2: sigma^2 = exp(logvar), not exp(2 logvar)":
            per_image(0.5 * (mu ** 2 + (2 * logvar).exp() - 2 * logvar - 1)).mean()},
        default="per entry 0.5 * (mu^2 + exp(logvar) - logvar - 1)"))
    expect_close(got_loss, rec + beta * kl, f"loss of {what}", hint=diagnose(got_loss, {
        "beta weighs the KL term: loss = rec + beta * kl": beta * rec + kl}))


@graded(points=1)
def check_reparameterize(student):
    """reparameterize: mu + exp(logvar / 2) * eps with eps = randn(mu.shape, generator=...); gradients reach mu and logvar"""
    g = torch.Generator().manual_seed(3)
    mu, logvar, weight = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    eps = torch.randn((3, 4), generator=torch.Generator().manual_seed(7), dtype=mu.dtype)
    want = mu + (logvar / 2).exp() * eps
    got = student.probe("reparameterized", mu=mu, logvar=logvar, seed=7, weight=weight)
    what = "reparameterize(mu (3, 4), logvar, torch.Generator().manual_seed(7))"
    expect_close(got["z"], want, what, hint=diagnose(got["z"], {
        "exp(logvar) is the variance: the standard deviation is exp(logvar / 2)": mu + logvar.exp() * eps,
        "logvar is a log-variance, not a standard deviation: use exp(logvar / 2)": mu + logvar * eps},
        default="draw eps once with torch.randn(mu.shape, generator=generator, ...) as the docstring says"))
    expect(isinstance(got["again"], torch.Tensor) and torch.equal(got["again"], got["z"]), what,
           "gives another sample for the same generator seed", hint="draw eps with the generator you are given")
    expect(got["grad_mu"] is not None and got["grad_logvar"] is not None, what,
           "is not differentiable with respect to mu and logvar",
           hint="no torch.no_grad() or .detach(): the randomness is in eps only")
    expect_close(got["grad_mu"], weight, f"d/dmu of sum(w * {what})", atol=1e-5)
    expect_close(got["grad_logvar"], weight * 0.5 * (logvar / 2).exp() * eps, f"d/dlogvar of sum(w * {what})", atol=1e-5)


# ------------------------------------------------------------------------------------------------------------------
# Part C: CrossAttention, patchify / unpatchify, timestep_embedding, DiTBlock

def _cross_shapes(qd, cd):
    return {"q.weight": [qd, qd], "q.bias": [qd], "k.weight": [qd, cd], "k.bias": [qd], "v.weight": [qd, cd],
            "v.bias": [qd], "out.weight": [qd, qd], "out.bias": [qd]}


def _mha(xq, xkv, wq, bq, wk, bk, wv, bv, wo, bo, H, keep=None, *, scale=None, softmax_dim=-1, invert=False,
         interleaved=False, project=True, no_transpose=False):
    """Multi-head attention written out: heads are feature blocks h*d_h .. (h+1)*d_h - 1 (or every H-th feature
    when interleaved); the keyword arguments build the common bugs."""
    B, N, D = xq.shape
    L, dh = xkv.shape[1], D // H

    def split(v, n):
        if no_transpose:
            return v.reshape(B, H, n, dh)
        return v.view(B, n, dh, H).permute(0, 3, 1, 2) if interleaved else v.view(B, n, H, dh).transpose(1, 2)

    q, k, v = split(F.linear(xq, wq, bq), N), split(F.linear(xkv, wk, bk), L), split(F.linear(xkv, wv, bv), L)
    logits = q @ k.transpose(-1, -2) / (math.sqrt(dh) if scale is None else scale)
    if keep is not None:  # -inf where a key may not be attended to
        hidden_keys = keep if invert else ~keep
        logits = logits.masked_fill(hidden_keys[:, None, None, :], float("-inf"))
    heads = logits.softmax(softmax_dim) @ v
    if no_transpose:
        heads = heads.reshape(B, N, D)
    else:
        heads = heads.permute(0, 2, 3, 1).reshape(B, N, D) if interleaved else heads.transpose(1, 2).reshape(B, N, D)
    return F.linear(heads, wo, bo) if project else heads


def _cross(state, x, context, keep, H, prefix="", **bug):
    w = [state[f"{prefix}{n}.{k}"] for n in ("q", "k", "v", "out") for k in ("weight", "bias")]
    return _mha(x, context, *w, H, keep, **bug)


@graded(points=1)
def check_cross_attention(student):
    """CrossAttention: q/k/v/out layers, heads of d_h features, scores / sqrt(d_h), softmax over the real context tokens"""
    checks = Checks()
    qd, cd, H = 8, 6, 2
    with checks.case("layers and ValueError"):
        got = student.probe("cross_layers", dims=(qd, cd, H))
        expect_equal(got["shapes"], _cross_shapes(qd, cd), "CrossAttention(8, 6, 2).state_dict() shapes",
                     hint="self.q, self.k, self.v, self.out: nn.Linear with bias, named exactly so")
        expect_equal(got["n_heads"], H, "CrossAttention(8, 6, 2).n_heads")
        err = student.probe("cross_raises", dims=(10, 6, 3))
        expect(err == "ValueError", "CrossAttention(10, 6, 3)", f"raised {err}" if err else "did not raise",
               hint="raise ValueError when query_dim is not divisible by n_heads")
    g = torch.Generator().manual_seed(4)
    state = _random(_cross_shapes(qd, cd), 5)
    x, context = torch.randn(2, 5, qd, generator=g), torch.randn(2, 3, cd, generator=g)
    keep = torch.tensor([[True, True, False], [True, False, True]])
    context[0, 2], context[1, 1] = 50.0, -50.0  # what the padding holds must not matter
    for label, mask in (("with a padding mask", keep), ("mask=None", None)):
        with checks.case(label):
            got = student.probe("cross_forward", dims=(qd, cd, H), state=state, x=x,
                                context=context, mask=mask)
            what = f"CrossAttention(8, 6, 2)(x (2, 5, 8), context (2, 3, 6), {'mask' if mask is not None else 'None'})"
            bugs = {"scores not scaled by 1/sqrt(d_h) (d_h = query_dim // n_heads)":
                        _cross(state, x, context, mask, H, scale=1.0),
                    "scores scaled by 1/sqrt(query_dim); use the head size d_h = query_dim // n_heads":
                        _cross(state, x, context, mask, H, scale=math.sqrt(qd)),
                    "scores scaled by 1/d_h instead of 1/sqrt(d_h)": _cross(state, x, context, mask, H, scale=qd / H),
                    "softmax over the queries (dim=-2); it is over the L context positions (dim=-1)":
                        _cross(state, x, context, mask, H, softmax_dim=-2),
                    "head h uses features h*d_h .. (h+1)*d_h - 1: view(B, L, H, d_h), not view(B, L, d_h, H)":
                        _cross(state, x, context, mask, H, interleaved=True),
                    "split the heads with .view(B, L, H, d_h).transpose(1, 2) (and merge them back the same way), "
                    "not .view(B, H, L, d_h), which mixes positions into heads":
                        _cross(state, x, context, mask, H, no_transpose=True),
                    "the concatenated heads go through self.out": _cross(state, x, context, mask, H, project=False)}
            if label != "mask=None":
                bugs = {"the mask is inverted: True = may be attended to, so fill -inf where the mask is False":
                            _cross(state, x, context, mask, H, invert=True),
                        "the mask is ignored: padded context positions get attention":
                            _cross(state, x, context, None, H), **bugs}
            expect_close(got, _cross(state, x, context, mask, H), what, atol=1e-5, hint=diagnose(got, bugs))
    return checks


def _layout(C, H, W, p, tokens="rows", features="pixel"):
    """idx (N, p*p*C): which entry of a flattened (C, H, W) latent each token feature holds."""
    gh, gw = H // p, W // p
    idx = torch.empty(gh * gw, p * p * C, dtype=torch.long)
    for pr in range(gh):
        for pc in range(gw):
            n = pr * gw + pc if tokens == "rows" else pc * gh + pr
            for i in range(p):
                for j in range(p):
                    for c in range(C):
                        f = {"pixel": (i * p + j) * C + c, "channel": c * p * p + i * p + j,
                             "column": (j * p + i) * C + c}[features]
                        idx[n, f] = c * H * W + (pr * p + i) * W + pc * p + j
    return idx


def _to_tokens(z, p, **layout):
    return z.flatten(1)[:, _layout(*z.shape[1:], p, **layout)]


def _from_tokens(seq, p, C, H, W, **layout):
    B = seq.shape[0]
    out = torch.empty(B, C * H * W, dtype=seq.dtype)
    out[:, _layout(C, H, W, p, **layout).flatten()] = seq.reshape(B, -1)
    return out.view(B, C, H, W)


PATCH_BUGS = {"patch features ordered channel-first; inside a token the order is pixel row, pixel column, then channel":
              {"features": "channel"},
              "tokens go down the patch columns; they go along each patch row first (token = row * (W//p) + col)":
              {"tokens": "columns"},
              "inside a patch the pixel row comes before the pixel column: feature = (row * p + col) * C + channel":
              {"features": "column"}}


@graded(points=1)
def check_patchify(student):
    """patchify and unpatchify: tokens row by row over the patch grid, features (pixel row, pixel column, channel)"""
    checks = Checks()
    z = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    with checks.case("patchify of a numbered (2, 3, 4, 6) latent, p=2"):
        got = student.call("patchify", z, 2)
        bugs = {k: _to_tokens(z, 2, **v) for k, v in PATCH_BUGS.items()}
        bugs["a plain reshape mixes channels and pixels: permute to (B, H/p, W/p, p, p, C) first"] = z.reshape(2, 6, 12)
        expect_close(got, _to_tokens(z, 2), "patchify(arange(144).reshape(2, 3, 4, 6), 2)", atol=0,
                     hint=diagnose(got, bugs, default="token 0 is [z[0,0,0,0], z[0,1,0,0], z[0,2,0,0], "
                                                      "z[0,0,0,1], ...] = [0, 24, 48, 1, 25, 49, 6, 30, 54, 7, 31, 55]"))
    g = torch.Generator().manual_seed(6)
    z2 = torch.randn(2, 4, 6, 4, generator=g)
    tokens = _to_tokens(z2, 2)
    with checks.case("unpatchify inverts it: (B, 6, 16) tokens -> (2, 4, 6, 4)"):
        got = student.call("unpatchify", tokens, 2, 4, 6, 4)
        bugs = {k: _from_tokens(tokens, 2, 4, 6, 4, **v) for k, v in PATCH_BUGS.items()}
        expect_close(got, z2, "unpatchify(patchify(z, 2), 2, C=4, H=6, W=4)", atol=0,
                     hint=diagnose(got, bugs, default="the exact inverse of patchify"))
    with checks.case("unpatchify(patchify(z)) == z for p=4"):
        z3 = torch.randn(1, 2, 8, 4, generator=g)
        got = student.call("patchify", z3, 4)
        expect_close(got, _to_tokens(z3, 4), "patchify(z (1, 2, 8, 4), 4)", atol=0,
                     hint=diagnose(got, {k: _to_tokens(z3, 4, **v) for k, v in PATCH_BUGS.items()}))
        back = student.call("unpatchify", got, 4, 2, 8, 4)
        expect_close(back, z3, "unpatchify(patchify(z, 4), 4, 2, 8, 4)", atol=0,
                     hint=diagnose(back, {k: _from_tokens(got, 4, 2, 8, 4, **v) for k, v in PATCH_BUGS.items()}))
    return checks


def _sinusoids(t, dim, max_period=10000.0, *, sines_first=False, denom=None, interleave=False):
    h = dim // 2
    i = torch.arange(h, dtype=torch.float64)
    w = float(max_period) ** (-i / (h if denom is None else denom))
    a = t.double()[:, None] * w
    parts = [a.sin(), a.cos()] if sines_first else [a.cos(), a.sin()]
    out = torch.stack(parts, -1).flatten(1) if interleave else torch.cat(parts, -1)
    return out.float()


@graded(points=1)
def check_timestep_embedding(student):
    """timestep_embedding: [cos(t w), sin(t w)] (cosines first), w_i = max_period^(-i / (dim/2)), float32"""
    checks = Checks()
    for t, dim, period in ((torch.tensor([0, 1, 7, 999]), 8, None), (torch.tensor([0.5, 250.0]), 6, 100.0)):
        with checks.case(f"t={t.tolist()}, dim={dim}" + (f", max_period={period:g}" if period else "")):
            got = student.call("timestep_embedding", t, dim) if period is None else \
                student.call("timestep_embedding", t, dim, period)
            p = 10000.0 if period is None else period
            what = f"timestep_embedding(tensor({t.tolist()}), {dim}" + (f", {period:g})" if period else ")")
            kind = got.dtype if isinstance(got, torch.Tensor) else type(got).__name__
            expect(kind == torch.float32, what, f"returned {kind}", hint="a float32 tensor (B, dim)")
            expect_close(got, _sinusoids(t, dim, p), what, atol=2e-4, hint=diagnose(got, {
                "sin/cos order swapped: cosines come first, [cos(t w), sin(t w)]": _sinusoids(t, dim, p, sines_first=True),
                "the exponent is -i / (dim // 2), not -i / dim": _sinusoids(t, dim, p, denom=dim),
                "the exponent is -i / (dim // 2), not -i / (dim // 2 - 1)": _sinusoids(t, dim, p, denom=dim // 2 - 1),
                "cosines and sines are concatenated ([all cos, all sin]), not interleaved":
                    _sinusoids(t, dim, p, interleave=True),
                **({"max_period is ignored: w_i = max_period ** (-i / (dim // 2))": _sinusoids(t, dim)}
                   if period is not None else {})}, atol=2e-4))
    return checks


def _block_shapes(dim, cd, hidden):
    shapes = {"attn.in_proj_weight": [3 * dim, dim], "attn.in_proj_bias": [3 * dim], "attn.out_proj.weight": [dim, dim],
              "attn.out_proj.bias": [dim]}
    shapes.update({f"cross.{k}": v for k, v in _cross_shapes(dim, cd).items()})
    shapes.update({"mlp.0.weight": [hidden, dim], "mlp.0.bias": [hidden], "mlp.2.weight": [dim, hidden],
                   "mlp.2.bias": [dim], "ada.1.weight": [9 * dim, dim], "ada.1.bias": [9 * dim]})
    return shapes


def _block(state, x, c, context, keep, H, *, chunks="per sub-layer", gate=True, one_plus=True, sequential=True,
           use_mask=True, gelu="tanh"):
    """The DiT block written out from its docstring; the keyword arguments build the common bugs."""
    D = x.shape[-1]
    mod = F.linear(F.silu(c), state["ada.1.weight"], state["ada.1.bias"]).chunk(9, dim=-1)
    order = {"per sub-layer": (0, 1, 2, 3, 4, 5, 6, 7, 8), "by kind": (0, 3, 6, 1, 4, 7, 2, 5, 8),
             "scale first": (1, 0, 2, 4, 3, 5, 7, 6, 8), "gate first": (1, 2, 0, 4, 5, 3, 7, 8, 6)}[chunks]
    mod = [mod[k] for k in order]
    in_w, in_b = state["attn.in_proj_weight"].chunk(3), state["attn.in_proj_bias"].chunk(3)
    self_w = [in_w[0], in_b[0], in_w[1], in_b[1], in_w[2], in_b[2], state["attn.out_proj.weight"], state["attn.out_proj.bias"]]
    layers = [lambda h: _mha(h, h, *self_w, H),
              lambda h: _cross(state, h, context, keep if use_mask else None, H, prefix="cross."),
              lambda h: F.linear(F.gelu(F.linear(h, state["mlp.0.weight"], state["mlp.0.bias"]), approximate=gelu),
                                 state["mlp.2.weight"], state["mlp.2.bias"])]
    start = x
    for i, f in enumerate(layers):
        shift, scale, g = mod[3 * i:3 * i + 3]
        h = F.layer_norm(x if sequential else start, (D,), eps=1e-6) * ((1 + scale) if one_plus else scale)[:, None] \
            + shift[:, None]
        x = x + (g[:, None] if gate else 1) * f(h)
    return x


@graded(points=1)
def check_dit_block(student):
    """DiTBlock: the checkpoint's layer names; adaLN-zero starts as the identity; (shift, scale, gate) per sub-layer"""
    dim, cd, H, ratio = 16, 6, 2, 2.0
    g = torch.Generator().manual_seed(8)
    x, c, context = torch.randn(2, 4, dim, generator=g), torch.randn(2, dim, generator=g), torch.randn(2, 3, cd, generator=g)
    keep = torch.tensor([[True, True, False], [True, True, True]])
    context[0, 2] = 30.0  # padding that must not be read
    checks = Checks()
    with checks.case("layers and adaLN-zero initialisation"):
        got = student.probe("block_init", dim=dim, context_dim=cd, n_heads=H, mlp_ratio=ratio, x=x, c=c,
                            context=context, mask=keep)
        expect_equal(got["shapes"], _block_shapes(dim, cd, int(dim * ratio)), "DiTBlock(16, 6, 2, mlp_ratio=2).state_dict() shapes",
                     hint="the names of the docstring: norm1..norm3 (no affine parameters), attn (nn.MultiheadAttention, batch_first), "
                          "cross, mlp = Sequential(Linear, GELU, Linear) with hidden = int(dim * mlp_ratio), "
                          "ada = Sequential(SiLU, Linear(dim, 9 * dim))")
        expect(got["ada_zero"], "DiTBlock(16, 6, 2).ada[1] after __init__", "is not all zeros (weight and bias)",
               hint="adaLN-zero: nn.init.zeros_ on the Linear's weight and bias")
        expect_close(got["out"], x, "a fresh DiTBlock(16, 6, 2)(x, c, context, mask)", atol=0,
                     hint="with every gate 0 each block starts as the identity: x + gate * f(...) (if "
                          "check_cross_attention fails, fix CrossAttention first)")
    with checks.case("forward with given weights"):
        state = _random(_block_shapes(dim, cd, int(dim * ratio)), 9)
        got = student.probe("block_forward", dim=dim, context_dim=cd, n_heads=H, mlp_ratio=ratio, state=state, x=x,
                            c=c, context=context, mask=keep)
        want = _block(state, x, c, context, keep, H)
        bugs = {"adaLN chunk order wrong: ada(c).chunk(9) is (shift, scale, gate) of self-attention, then of "
                "cross-attention, then of the MLP, not all shifts, then all scales, then all gates":
                    _block(state, x, c, context, keep, H, chunks="by kind"),
                "adaLN chunk order wrong: each triple is (shift, scale, gate), not (scale, shift, gate)":
                    _block(state, x, c, context, keep, H, chunks="scale first"),
                "adaLN chunk order wrong: each triple is (shift, scale, gate), the gate last":
                    _block(state, x, c, context, keep, H, chunks="gate first"),
                "the gate is missing: x = x + gate[:, None] * f(...)": _block(state, x, c, context, keep, H, gate=False),
                "modulate scales by (1 + scale), not by scale": _block(state, x, c, context, keep, H, one_plus=False),
                "the sub-layers run one after the other: each normalises the x the previous one updated":
                    _block(state, x, c, context, keep, H, sequential=False),
                "the prompt's mask is not passed to the cross-attention": _block(state, x, c, context, keep, H, use_mask=False),
                "the MLP uses nn.GELU(approximate=\"tanh\")": _block(state, x, c, context, keep, H, gelu="none")}
        expect_close(got, want, "DiTBlock(16, 6, 2, mlp_ratio=2)(x, c, context, mask) with given weights", atol=1e-4,
                     hint=diagnose(got, bugs, atol=1e-4, default="x = x + gate_i[:, None] * f_i(modulate(norm_i(x), "
                                   "shift_i, scale_i)) for self-attention, cross-attention, MLP (if check_cross_attention "
                                   "fails, fix CrossAttention first)"))
    return checks


# ------------------------------------------------------------------------------------------------------------------
# Part D: cfg_noise_prediction, sample (with a stand-in denoiser: eps = 0.9 x + a number per example)

def _eps(x, t, hidden, mask):
    m = mask.to(hidden.dtype)
    per = 0.05 * (hidden * m[..., None]).sum((1, 2)) + 0.01 * m.sum(1) + 1e-3 * t.to(hidden.dtype)
    return 0.9 * x + per.view(-1, *[1] * (x.dim() - 1))


def _pad_to(h, m, L, left=False):
    extra = L - h.shape[1]
    zh, zm = h.new_zeros(h.shape[0], extra, h.shape[2]), torch.zeros(m.shape[0], extra, dtype=torch.bool)
    return (torch.cat([zh, h], 1), torch.cat([zm, m], 1)) if left else (torch.cat([h, zh], 1), torch.cat([m, zm], 1))


@graded(points=1)
def check_cfg_noise_prediction(student):
    """cfg_noise_prediction: eps_u + s (eps_c - eps_u) from one model call on [cond; uncond], padded to one length"""
    g = torch.Generator().manual_seed(10)
    x, t = torch.randn(3, 2, 4, 4, generator=g), torch.tensor([5, 600, 999])
    hc = torch.randn(3, 5, 4, generator=g)
    mc = torch.tensor([[True] * k + [False] * (5 - k) for k in (5, 3, 4)])
    hu, mu = torch.zeros(3, 2, 4), torch.tensor([[True, False]] * 3)
    eps_c, eps_u = _eps(x, t, hc, mc), _eps(x, t, hu, mu)
    checks = Checks()
    want_h = torch.cat([_pad_to(hc, mc, 5)[0], _pad_to(hu, mu, 5)[0]])
    want_m = torch.cat([_pad_to(hc, mc, 5)[1], _pad_to(hu, mu, 5)[1]])
    for s in (3.0, 0.0, 1.0):
        with checks.case(f"guidance_scale={s:g}"):
            got = student.probe("cfg", x=x, t=t, cond=(hc, mc), uncond=(hu, mu), scale=s)
            what = f"cfg_noise_prediction(stand-in model, x_t (3, 2, 4, 4), t, cond (L=5), uncond (L=2), {s:g})"
            expect(got["calls"] == 1, what, f"called the model {got['calls']} times",
                   hint=_bug("two forward passes instead of one batched pass: call the model once on the 2B examples")
                   if got["calls"] == 2 else "one call on the batch of 2B")
            seen = got["first_call"]
            expect_close(seen["x"], torch.cat([x, x]), f"the x the model saw in {what}", atol=0, hint="[x_t; x_t]")
            expect_equal(seen["t"], torch.cat([t, t]), f"the t the model saw in {what}", hint="[t; t]")
            expect_close(seen["hidden"], want_h, f"the hidden states the model saw in {what}", atol=0,
                         hint=diagnose(seen["hidden"], {
                             "the conditional half goes first: [cond hidden; uncond hidden]": torch.cat(
                                 [_pad_to(hu, mu, 5)[0], _pad_to(hc, mc, 5)[0]]),
                             "pad on the right: zero states after the tokens": torch.cat(
                                 [_pad_to(hc, mc, 5, left=True)[0], _pad_to(hu, mu, 5, left=True)[0]])},
                             default="pad both to L = max(L_c, L_u) with zero states on the right, then concatenate"))
            expect_equal(seen["mask"], want_m, f"the mask the model saw in {what}", hint=diagnose(seen["mask"], {
                "the padded positions must be False in the mask (the model would attend to the zero states)":
                    torch.cat([_pad_to(hc, mc, 5)[1], torch.cat([mu, torch.ones(3, 3, dtype=torch.bool)], 1)]),
                "the conditional half goes first: [cond mask; uncond mask]":
                    torch.cat([_pad_to(hu, mu, 5)[1], _pad_to(hc, mc, 5)[1]]),
                "pad on the right: the False entries go after the tokens":
                    torch.cat([_pad_to(hc, mc, 5, left=True)[1], _pad_to(hu, mu, 5, left=True)[1]])},
                default="a bool mask, False on the padding"))
            expect_close(got["out"], eps_u + s * (eps_c - eps_u), what, atol=1e-5, hint=diagnose(got["out"], {
                "guidance formula reversed (eps_c + s(eps_u - eps_c)), or the output's halves swapped: the first B "
                "rows are eps_c; the result is eps_u + s * (eps_c - eps_u)": eps_c + s * (eps_u - eps_c),
                "the result is eps_u + s * (eps_c - eps_u), not eps_c + s * (eps_c - eps_u)": eps_c + s * (eps_c - eps_u)}))
    return checks


def _cosine_abar(T=1000, s=0.008):
    f = torch.cos((torch.linspace(0, 1, T + 1, dtype=torch.float64) + s) / (1 + s) * math.pi / 2) ** 2
    return (f[1:] / f[0]).clamp(min=1e-9).float()


def _taus(T, steps):
    """The timesteps of the docstring: linspace(T - 1, 0, steps), rounded to the nearest integer (half to even)."""
    return [int(v) for v in torch.linspace(T - 1, 0, steps).round()]


def _words(prompts, dim=3):
    n = [len(p.split()) for p in prompts]
    hidden, mask = torch.zeros(len(prompts), max(n), dim), torch.zeros(len(prompts), max(n), dtype=torch.bool)
    for i, k in enumerate(n):
        for j in range(k):
            hidden[i, j] = (i + 1) * (j + 1) * 0.1 * torch.arange(1, dim + 1) / dim
            mask[i, j] = True
    return hidden, mask


def _ddim(prompts, shape, steps, s, seed, abar, clip, *, clamp=True, recompute=True, last=1.0, decode=True, taus=None):
    """DDIM (eta = 0) with guidance, written out from sample's docstring; the keyword arguments build the bugs."""
    hidden, mask = _words(prompts)
    null_h, null_m = torch.zeros_like(hidden), torch.zeros_like(mask)
    null_m[:, 0] = True
    z = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    taus = _taus(len(abar), steps) if taus is None else taus
    for k, tau in enumerate(taus):
        t = torch.full((shape[0],), tau, dtype=torch.long)
        e_u, e_c = _eps(z, t, null_h, null_m), _eps(z, t, hidden, mask)
        guided = e_u + s * (e_c - e_u)
        now = abar[tau]
        nxt = abar[taus[k + 1]] if k + 1 < len(taus) else torch.tensor(last)
        x0 = (z - (1 - now).sqrt() * guided) / now.sqrt()
        x0 = x0.clamp(-clip, clip) if clamp else x0
        direction = (z - now.sqrt() * x0) / (1 - now).sqrt() if recompute else guided
        z = nxt.sqrt() * x0 + (1 - nxt).sqrt() * direction
    return 2 * z + 1 if decode else z


@graded(points=1)
def check_sample(student):
    """sample: DDIM with guidance on linspace(T-1, 0, steps).round() timesteps, x0_hat clipped, then decoded"""
    checks = Checks()
    prompts = ["a red 3", "a blue 7 in the top left"]
    shape = (2, 2, 4, 4)
    linear = torch.linspace(0.999, 0.02, 30)
    cases = {"cosine schedule (alphas_cumprod=None), steps=4, s=3": (4, 3.0, 0, None, None),
             "given schedule of T=30, steps=7 (rounding), s=1.5, clip=1": (7, 1.5, 1, linear, 1.0)}
    for label, (steps, s, seed, abar, clip) in cases.items():
        with checks.case(label):
            got = student.probe("run_sample", prompts=prompts, channels=2, size=4, steps=steps, scale=s, seed=seed,
                                alphas_cumprod=abar, clip=clip)
            sched, c = (_cosine_abar() if abar is None else abar), (3.0 if clip is None else clip)
            what = f"sample(stand-in DiT, identity-like VAE, encode, 2 prompts, steps={steps}, guidance_scale={s:g}" + \
                   (", alphas_cumprod=<T=30>, clip=1)" if abar is not None else ")")
            taus = _taus(len(sched), steps)
            seen = [int(call["t"].reshape(-1)[0]) if call["t"].numel() else None for call in got["calls"]]
            expect_equal(seen, taus, f"the timesteps the model saw in {what}", hint=diagnose(seen, {
                "round the timesteps: torch.linspace(T - 1, 0, steps).round().long() (int() truncates)":
                    torch.linspace(len(sched) - 1, 0, steps).long().tolist(),
                **({"alphas_cumprod is ignored: use the given schedule, T = len(alphas_cumprod)": _taus(1000, steps)}
                   if abar is not None else {})},
                default="one guided model call per step, on torch.linspace(T - 1, 0, steps).round().long()"))
            expect(all(call["batch"] == 4 and call["t"].dtype == torch.long for call in got["calls"]), what,
                   "called the model on something else than a batch of 2B with long timesteps",
                   hint="eps = cfg_noise_prediction(model, z, t, cond, uncond, s) with t = torch.full((B,), tau, dtype=torch.long)")
            expect(got["encode_calls"] == 1, what, f"called encode {got['encode_calls']} times",
                   hint="encode the prompts once, before the loop")
            want = _ddim(prompts, shape, steps, s, seed, sched, c)
            bugs = {"x0_hat is not clipped: clamp it to [-clip, clip] before the update":
                        _ddim(prompts, shape, steps, s, seed, sched, c, clamp=False),
                    "recompute eps from the clipped x0_hat: eps = (z - sqrt(abar) x0_hat) / sqrt(1 - abar)":
                        _ddim(prompts, shape, steps, s, seed, sched, c, recompute=False),
                    "after the last step abar = 1, so the result is x0_hat":
                        _ddim(prompts, shape, steps, s, seed, sched, c, last=float(sched[0])),
                    "the result is the decoded images vae.decode_latents(latents), not the latents": _ddim(prompts, shape, steps, s, seed, sched, c, decode=False)}
            expect_close(got["out"], want, what, atol=1e-4, hint=diagnose(got["out"], bugs, atol=1e-4, default=(
                "z = torch.randn((B, C, S, S), generator=generator); x0_hat = clip((z - sqrt(1 - abar) eps) / sqrt(abar)); "
                "then z = sqrt(abar_next) x0_hat + sqrt(1 - abar_next) eps_hat (if check_cfg_noise_prediction or "
                "check_null_and_drop_condition fails, fix those first)")))
    return checks


# ------------------------------------------------------------------------------------------------------------------
# Part E: clip_loss

def _infonce(a, b, scale, *, normalise=True, directions="both", mean=True):
    if normalise:
        a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    logits = scale * a @ b.T
    i2t = (logits.logsumexp(1) - logits.diagonal()).mean()
    t2i = (logits.logsumexp(0) - logits.diagonal()).mean()
    if directions == "image":
        return i2t
    if directions == "text":
        return t2i
    return (i2t + t2i) / 2 if mean else i2t + t2i


@graded(points=1)
def check_clip_loss(student):
    """clip_loss: unit-normalised embeddings, logits = logit_scale * image @ text^T, mean of both cross-entropies"""
    g = torch.Generator().manual_seed(11)
    img, txt = torch.randn(5, 3, generator=g) * 3, torch.randn(5, 3, generator=g)
    txt[:, 0] += 2.0  # not symmetric: the two directions differ
    checks = Checks()
    for label, scale in (("logit_scale=2.5 (a float)", 2.5), ("logit_scale=tensor(7.0)", torch.tensor(7.0))):
        with checks.case(label):
            s = float(scale)
            got = student.call("clip_loss", img, txt, scale)
            what = f"clip_loss(image_emb (5, 3), text_emb (5, 3), {label.split('=')[1].split(' ')[0]})"
            expect(isinstance(got, torch.Tensor) and got.dim() == 0, what, f"returned {type(got).__name__} "
                   f"{tuple(getattr(got, 'shape', ()))}", hint="a scalar (0-d) tensor")
            expect_close(got, _infonce(img, txt, s), what, atol=1e-5, hint=diagnose(got, {
                "clip_loss is one-directional: average the image->text AND text->image cross-entropies":
                    _infonce(img, txt, s, directions="image"),
                "clip_loss is one-directional: average the text->image AND image->text cross-entropies":
                    _infonce(img, txt, s, directions="text"),
                "the two cross-entropies are added; take their mean": _infonce(img, txt, s, mean=False),
                "the embeddings are not normalised to unit length (F.normalize(..., dim=-1))":
                    _infonce(img, txt, s, normalise=False),
                "logit_scale is already e^tau: multiply by it, do not exponentiate it": _infonce(img, txt, math.exp(s)),
                "logit_scale multiplies the cosines (it is 1 / temperature), do not divide by it": _infonce(img, txt, 1 / s)}))
    with checks.case("gradients reach both embeddings and logit_scale"):
        tau = torch.tensor(1.2)
        got = student.probe("clip_grads", image_emb=img, text_emb=txt, log_scale=tau)
        u, v, t = (x.clone().requires_grad_() for x in (img, txt, tau))
        want = torch.autograd.grad(_infonce(u, v, t.exp()), [u, v, t])
        what = "clip_loss(image_emb, text_emb, tau.exp()) with inputs that require grad"
        expect(got["grads"] is not None, what, "returned something without a gradient",
               hint="no .item(), float(...), .detach() or torch.no_grad(): training backpropagates through the loss")
        for name, g_got, g_want in zip(("image_emb", "text_emb", "tau"), got["grads"], want):
            expect(g_got is not None, f"the gradient of {what} with respect to {name}", "is None",
                   hint="keep logit_scale a tensor (float(logit_scale) cuts CLIP's learned temperature off the graph)"
                   if name == "tau" else "no .detach() on the embeddings")
            expect_close(g_got, g_want, f"the gradient of {what} with respect to {name}", atol=1e-5)
    with checks.case("all captions alike: log B"):
        got = student.call("clip_loss", torch.eye(4), torch.ones(4, 4), 1.0)
        expect_close(got, torch.tensor(math.log(4)), "clip_loss(eye(4), ones(4, 4), 1.0)", atol=1e-5,
                     hint="every text is the same unit vector, so every image's logits are equal: log 4 each way")
    return checks
