"""HW4 hidden suite, Part D: classifier-free guidance and the DDIM sampler with a stand-in denoiser, decoder and
prompt encoder built from seeds on both sides (``probes._Denoiser``, ``_Decoder``, ``_Encoder``).

What decides points is the values the student's code returns, compared in the parent with the reference's under
the same stand-ins. The stand-in denoiser's output depends on each example's row in the batch, on the batch's
mean and on how many calls came before, so two calls instead of one batched call of 2B, or a batch ordered
[uncond; cond], change the numbers; the calls it records inside the sandbox only word the hints.

``sample`` runs with the grader's own ``cfg_noise_prediction`` and ``null_condition`` in place of the
student's (each has its own test): its points depend on the sampler alone."""

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, expect, expect_close, graded, randint, reference, suite_probes
from genai_course.grading.api import diagnose

ref = reference("hw4")
WORDS = ("a", "red", "green", "blue", "yellow", "3", "7", "0", "in", "the", "top", "bottom", "left", "right", "digit")


P = suite_probes(__file__)


def _condition(g, B, L, D):
    """Token states with a right-padding mask; the padded states are not zero (as a text encoder's are not)."""
    hidden = torch.randn(B, L, D, generator=g)
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    lengths[0] = L
    return hidden, torch.arange(L)[None] < lengths[:, None]


def _null(B, L, D):
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[:, 0] = True
    return torch.zeros(B, L, D), mask


def _variant(seed, x, t, cond, uncond, s, order="cu", calls=1, pad_value=False, left=False):
    """What a guidance step with a known bug returns under the same stand-in (for naming the bug)."""
    model = P._Denoiser(seed, x.shape[1], x.shape[-1], cond[0].shape[-1])
    L = max(cond[0].shape[1], uncond[0].shape[1])

    def pad(h, m):
        n = L - h.shape[1]
        return (F.pad(h, (0, 0, n, 0) if left else (0, 0, 0, n)),
                F.pad(m.bool(), (n, 0) if left else (0, n), value=pad_value))

    (h_c, m_c), (h_u, m_u) = pad(*cond), pad(*uncond)
    if calls == 2:
        eps_c, eps_u = model(x, t, h_c, m_c), model(x, t, h_u, m_u)
    elif order == "uc":
        eps_u, eps_c = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([h_u, h_c]), torch.cat([m_u, m_c])).chunk(2)
    else:
        eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([h_c, h_u]), torch.cat([m_c, m_u])).chunk(2)
    return eps_u + s * (eps_c - eps_u), eps_c, eps_u


# ---- D.1 cfg_noise_prediction -------------------------------------------------------------------------------------

@graded(points=3, timeout=20)
def test_cfg_noise_prediction(student):
    """cfg_noise_prediction: eps_u + s (eps_c - eps_u) from one call on [cond; uncond] (2B examples), s = 0, 1 and others; conditions padded"""
    g = student.rng()
    checks = Checks()
    B, C, S, D = randint(g, 2, 4), randint(g, 2, 4), randint(g, 2, 4), randint(g, 3, 8)
    L = randint(g, 4, 7)
    s1, s2 = float(randint(g, 20, 80)) / 10, float(randint(g, 15, 90)) / 10
    cases = [(f"guidance_scale={s1:g}, both conditions of length {L}", s1, L, L),
             ("guidance_scale=0 gives the unconditional prediction", 0.0, L, L),
             (f"guidance_scale=1 gives the conditional prediction (an unconditional condition of length 1)", 1.0, L, 1),
             (f"guidance_scale={s2:g}, the unconditional condition of length 1 is padded to {L}", s2, L, 1),
             (f"guidance_scale={s1:g}, the conditional condition of length 2 is padded to {L}", s1, 2, L)]
    for label, s, L_c, L_u in cases:
        with checks.case(label):
            seed = randint(g, 0, 2**31)
            x, t = torch.randn(B, C, S, S, generator=g), torch.randint(0, 1000, (B,), generator=g)
            cond, uncond = _condition(g, B, L_c, D), _null(B, L_u, D)
            got = student.probe("cfg", seed=seed, x=x, t=t, cond=cond, uncond=uncond, guidance_scale=s)
            want, eps_c, eps_u = _variant(seed, x, t, cond, uncond, s)
            what = (f"cfg_noise_prediction(<stand-in model>, x_t {(B, C, S, S)}, t ({B},), cond (hidden {(B, L_c, D)}, "
                    f"mask), uncond (hidden {(B, L_u, D)}, mask), guidance_scale={s:g})")
            calls = got["calls"]
            shapes = ", ".join(f"batch {c['batch']} of length {c['L']}" for c in calls[:4]) + (", ..." if len(calls) > 4 else "")
            default = (f"the model saw {len(calls)} call(s) ({shapes}); ONE call on [x_t; x_t], [t; t], [cond hidden; "
                       f"uncond hidden], [cond mask; uncond mask] (2B = {2 * B} examples, cond first), then "
                       "eps_c, eps_u = eps.chunk(2) and eps_u + guidance_scale * (eps_c - eps_u)")
            hint = diagnose(got["out"], {
                "one forward pass on 2B examples, not two calls of B (the model saw "
                f"{len(calls)} calls)": _variant(seed, x, t, cond, uncond, s, calls=2)[0],
                "the batch is [cond; uncond]: the conditional half first": _variant(seed, x, t, cond, uncond, s, order="uc")[0],
                "guidance extrapolates from the UNconditional prediction: eps_u + s * (eps_c - eps_u)":
                    eps_c + s * (eps_c - eps_u),
                "pad the shorter condition with False mask entries (padding is never attended to)":
                    _variant(seed, x, t, cond, uncond, s, pad_value=True)[0],
                "pad on the right: the padding goes after the condition's positions":
                    _variant(seed, x, t, cond, uncond, s, left=True)[0]}, default=default)
            expect_close(got["out"], want, what, atol=1e-5, rtol=1e-5, hint=hint)
    return checks


# ---- D.2 sample ---------------------------------------------------------------------------------------------------

def _prompts(g, B):
    return [" ".join(WORDS[randint(g, 0, len(WORDS) - 1)] for _ in range(randint(g, 1, 7))) for _ in range(B)]


def _schedule(g, T):
    """A decreasing custom abar_t from near 1 to about 0.05: x0_hat stays within a few units without a clip."""
    lo = 0.04 + 0.03 * float(torch.rand(1, generator=g))
    return torch.linspace(0.999, lo, T) ** (1 + float(torch.rand(1, generator=g)))


def _ref_sample(seed, C, S, D, prompts, kwargs, gen_seed):
    model, vae, encode = P._Denoiser(seed, C, S, D), P._Decoder(seed, C), P._Encoder(seed, D)
    out = ref.sample(model, vae, encode, list(prompts), generator=torch.Generator().manual_seed(gen_seed), **kwargs)
    return out, model.records


def _same_t(got, want):
    return got.shape == want.shape and torch.equal(got.long(), want.long())


def _arg(k, v):
    if isinstance(v, torch.Tensor):
        return f"{k}=<a schedule of T={len(v)}>"
    return f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"


def _trajectory_hint(run, records, T, steps, clip):
    """Name the first call at which the student's sampler fed the model something else than the reference's."""
    for i, r in enumerate(records):
        if i >= len(run["z"]):
            break
        if not _same_t(run["t"][i], r["t"]):
            return (f"at step {i + 1} the model got t = {run['t'][i][:1].tolist()} instead of {r['t'][:1].tolist()}: the "
                    f"timesteps are torch.linspace(T - 1, 0, steps).round().long() with T = len(alphas_cumprod) = {T}, as a "
                    "(B,) long tensor")
        z, want = run["z"][i], r["z"]
        if z.shape != want.shape or not torch.allclose(z.double(), want.double(), atol=1e-4, rtol=1e-4):
            if i == 0:
                return ("the starting latent differs: z = torch.randn((B, C, S, S), generator=generator) on the CPU, "
                        "C = model.latent_channels, S = model.latent_size, then moved to the model's device")
            return (f"the latent fed to the model at step {i + 1} of {steps} differs (the first {i} were right): "
                    f"z0_hat = clamp((z - sqrt(1 - abar) eps) / sqrt(abar), -{clip:g}, {clip:g}); eps recomputed from the "
                    "clipped z0_hat; z = sqrt(abar_next) z0_hat + sqrt(1 - abar_next) eps")
    if len(run["z"]) != len(records):
        return (f"the model was called {len(run['z'])} times, the reference calls it {len(records)} times: one "
                "cfg_noise_prediction per step, `steps` steps")
    return ("every step fed the model the reference's latents, but the result differs: after the last step abar_next = 1 "
            "(z = z0_hat), then return vae.decode_latents(z)")


@graded(points=5, timeout=30)
def test_sample(student):
    """sample: equals the reference step by step for several steps, guidance scales, clips and schedules; one model call per step; reproducible"""
    g = student.rng()
    checks = Checks()
    B, C, S, D = randint(g, 2, 3), randint(g, 2, 4), randint(g, 2, 4), randint(g, 3, 8)
    T1, T2 = randint(g, 40, 120), randint(g, 40, 120)
    k1, k2 = randint(g, 5, 12), randint(g, 3, 9)
    s1, s2 = float(randint(g, 15, 60)) / 10, float(randint(g, 0, 20)) / 10
    clip = float(randint(g, 3, 8)) / 10
    cases = [("the defaults (steps=50, guidance_scale=5, clip=3, the cosine schedule of T=1000: the clip binds at the "
              "first steps), twice with the same generator seed", {}, True, 1000, 50, 3.0),
             (f"steps={k1}, guidance_scale={s1:g}, a custom schedule of T={T1}, clip={clip:g} (it binds)",
              {"steps": k1, "guidance_scale": s1, "alphas_cumprod": _schedule(g, T1), "clip": clip}, False, T1, k1, clip),
             (f"steps={k2}, guidance_scale={s2:g}, a custom schedule of T={T2}, clip=100 (it never binds)",
              {"steps": k2, "guidance_scale": s2, "alphas_cumprod": _schedule(g, T2), "clip": 100.0}, False, T2, k2, 100.0),
             (f"steps=1, guidance_scale={s1:g}, the cosine schedule (alphas_cumprod=None), clip=3",
              {"steps": 1, "guidance_scale": s1, "alphas_cumprod": None, "clip": 3.0}, False, 1000, 1, 3.0)]
    for label, kwargs, repeat, T, steps, clip_value in cases:
        with checks.case(label):
            seed, gen_seed = randint(g, 0, 2**31), randint(g, 0, 2**31)
            prompts = _prompts(g, B)
            runs = student.probe("sample", seed=seed, channels=C, size=S, context_dim=D, prompts=prompts, kwargs=kwargs,
                                 gen_seed=gen_seed, repeat=repeat)
            want, records = _ref_sample(seed, C, S, D, prompts, kwargs, gen_seed)
            what = (f"sample(<stand-in model: C={C}, S={S}>, <stand-in vae>, <stand-in encode>, <{B} prompts>"
                    + "".join(", " + _arg(k, v) for k, v in kwargs.items()) + ", generator)")
            run = runs[0]
            expect(isinstance(run["out"], torch.Tensor), what, f"returned {type(run['out']).__name__}",
                   hint="return vae.decode_latents(z), a tensor")
            calls = run["calls"]
            expect(len(calls) == steps and all(c["batch"] == 2 * B for c in calls), what,
                   f"called the model {len(calls)} times with batches {sorted({c['batch'] for c in calls})}; expected {steps} "
                   f"calls of {2 * B} examples", hint="one cfg_noise_prediction(model, z, t, cond, uncond, guidance_scale) per "
                                                      "step (it makes one batched call)")
            hint = _trajectory_hint(run, records, T, steps, clip_value)
            for i, r in enumerate(records):
                expect(_same_t(run["t"][i], r["t"]),
                       f"{what}: the timesteps of step {i + 1}", f"are {run['t'][i][:1].tolist()}, expected {r['t'][:1].tolist()}",
                       hint=hint)
                expect_close(run["z"][i], r["z"], f"{what}: the latent fed to the model at step {i + 1} of {steps}",
                             atol=1e-4, rtol=1e-4, hint=hint)
            candidates = {}
            if clip_value < 50:
                no_clip = dict(kwargs, clip=1e30)
                candidates["z0_hat must be clamped to [-clip, clip] at every step"] = \
                    _ref_sample(seed, C, S, D, prompts, no_clip, gen_seed)[0]
            expect_close(run["out"], want, what, atol=1e-4, rtol=1e-4,
                         hint=diagnose(run["out"], candidates, default=hint, atol=1e-4))
            if repeat:
                expect(isinstance(runs[1]["out"], torch.Tensor) and torch.equal(runs[1]["out"], run["out"]),
                       f"{what}, run twice with the same generator seed", "gave different images",
                       hint="the generator is the only randomness: torch.randn(..., generator=generator)")
    return checks
