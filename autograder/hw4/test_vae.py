"""HW4 hidden suite, Part B: the beta-VAE loss against the reference (several shapes and betas, the common bugs
named), and the reparameterised sample: exact under a seeded generator, with the gradients of mu and logvar."""
import torch

from genai_course.grading import Checks, expect, expect_close, graded, randint, reference
from genai_course.grading.api import diagnose

ref = reference("hw4")


def _vae_inputs(g, x_shape, z_shape):
    x = torch.rand(x_shape, generator=g)
    recon = (x + 0.3 * torch.randn(x_shape, generator=g)).clamp(0, 1)
    mu = torch.randn(z_shape, generator=g)
    logvar = 0.8 * torch.randn(z_shape, generator=g) - 0.5
    return x, recon, mu, logvar


def _kl(mu, logvar, half=0.5, var=None):
    var = logvar.exp() if var is None else var
    return (half * (mu ** 2 + var - logvar - 1)).flatten(1).sum(1).mean()


@graded(points=2, timeout=15)
def test_vae_loss(student):
    """vae_loss: (loss, rec, kl) equal the reference: per-image sums averaged over the batch, loss = rec + beta * kl"""
    g = student.rng()
    checks = Checks()
    B = randint(g, 3, 8)
    cases = [("images (B, 3, 8, 8), latents (B, 4, 2, 2), beta=0.01", (B, 3, 8, 8), (B, 4, 2, 2), 0.01),
             (f"flat inputs (B, {B + 9}), latents (B, 6)", (B, B + 9), (B, 6), float(randint(g, 5, 20)) / 10),
             ("one image (1, 1, 5, 7), latents (1, 3, 2, 2), beta=0", (1, 1, 5, 7), (1, 3, 2, 2), 0.0),
             ("images (B, 2, 4, 6), latents (B, 2, 3), a large beta", (B + 1, 2, 4, 6), (B + 1, 2, 3), float(randint(g, 3, 9)))]
    for label, x_shape, z_shape, beta in cases:
        with checks.case(label):
            x, recon, mu, logvar = _vae_inputs(g, x_shape, z_shape)
            got = student.call("vae_loss", x, recon, mu, logvar, beta)
            want = ref.vae_loss(x, recon, mu, logvar, beta)
            what = f"vae_loss(x {x_shape}, recon, mu {z_shape}, logvar, beta={beta:g})"
            expect(isinstance(got, (list, tuple)) and len(got) == 3, what,
                   f"returned {type(got).__name__}{' of length ' + str(len(got)) if isinstance(got, (list, tuple)) else ''}",
                   hint="return (loss, rec, kl), three scalar tensors")
            loss, rec, kl = got
            n = x_shape[0]
            rec_hint = diagnose(rec, {
                "rec is the per-image SUM of squared errors (averaged over the batch), not the mean over every pixel":
                    ((recon - x) ** 2).mean(),
                "average over the batch: the sum over the whole batch is B times too large": ((recon - x) ** 2).sum()},
                default="((recon - x) ** 2) summed over every dimension but the batch, then the mean over the batch")
            expect_close(rec, want[1], f"{what}: rec", atol=1e-5, rtol=1e-5, hint=rec_hint)
            kl_hint = diagnose(kl, {
                "KL = 0.5 * sum(mu^2 + exp(logvar) - logvar - 1): the factor 0.5 is missing": _kl(mu, logvar, half=1.0),
                "logvar is the log-VARIANCE: the variance is exp(logvar), not exp(logvar) ** 2":
                    _kl(mu, logvar, var=(2 * logvar).exp()),
                "average the per-image KL over the batch (not the sum over the batch)": _kl(mu, logvar) * n,
                "the KL is summed over the latent entries of each image, not averaged": _kl(mu, logvar) / mu[0].numel()},
                default="per image 0.5 * sum(mu^2 + exp(logvar) - logvar - 1) over the latent entries, then the batch mean")
            expect_close(kl, want[2], f"{what}: kl", atol=1e-5, rtol=1e-5, hint=kl_hint)
            expect_close(loss, want[0], f"{what}: loss", atol=1e-5, rtol=1e-5, hint=diagnose(loss, {
                "beta weights the KL term: loss = rec + beta * kl": want[1] + want[2],
                "loss = rec + beta * kl (beta on the KL, not on the reconstruction)": beta * want[1] + want[2]},
                default="loss = rec + beta * kl"))
    return checks


@graded(points=2, timeout=15)
def test_reparameterize(student):
    """reparameterize: exactly mu + exp(logvar / 2) * eps under a seeded generator (dtype kept); gradients reach mu and logvar"""
    g = student.rng()
    checks = Checks()
    B = randint(g, 2, 6)
    for label, shape, dtype in (("latents (B, 4, 2, 2), float32", (B, 4, 2, 2), torch.float32),
                                ("flat latents (B, 7), float64", (B, 7), torch.float64)):
        with checks.case(label):
            mu = torch.randn(shape, generator=g, dtype=dtype)
            logvar = torch.randn(shape, generator=g, dtype=dtype) - 0.5
            weight = torch.randn(shape, generator=g, dtype=dtype)
            seed = randint(g, 0, 2**31)
            got = student.probe("reparam", mu=mu, logvar=logvar, seed=seed, weight=weight)
            m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
            want = ref.reparameterize(m, lv, torch.Generator().manual_seed(seed))
            (want * weight).sum().backward()
            what = f"reparameterize(mu {shape} {str(dtype)[6:]}, logvar, generator)"
            eps = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
            expect_close(got["z"], want.detach(), what, atol=1e-6, rtol=1e-5, hint=diagnose(got["z"], {
                "the standard deviation is exp(logvar / 2), not exp(logvar)": mu + logvar.exp() * eps,
                "draw eps in mu's dtype: torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)":
                    mu + (0.5 * logvar).exp() * torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)},
                default="eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device) (the "
                        "generator is the only randomness); z = mu + exp(logvar / 2) * eps"))
            for name, grad in (("mu", m.grad), ("logvar", lv.grad)):
                got_grad = got.get(f"grad_{name}")
                expect(got_grad is not None, f"{what}: the gradient of sum(w * z) with respect to {name}",
                       "is missing: no gradient reached it", hint="build z from mu and logvar with differentiable "
                                                                  "operations (no .detach(), no torch.normal)")
                expect_close(got_grad, grad, f"{what}: the gradient of sum(w * z) with respect to {name}", atol=1e-6,
                             rtol=1e-5, hint="z = mu + exp(0.5 * logvar) * eps: dz/dmu = 1, "
                                             "dz/dlogvar = 0.5 * exp(0.5 * logvar) * eps")
    with checks.case("no generator: mean mu and standard deviation exp(logvar / 2) over 20000 draws"):
        mu, logvar = torch.full((20000,), 1.5), torch.full((20000,), float(randint(g, -2, 2)))
        got = student.probe("reparam", mu=mu, logvar=logvar, seed=None, weight=torch.ones(20000))
        z = got["z"]
        what = f"reparameterize(mu = 1.5, logvar = {logvar[0].item():g}) without a generator, 20000 entries"
        expect(isinstance(z, torch.Tensor) and z.shape == mu.shape, what, f"returned {type(z).__name__}",
               hint="a tensor shaped like mu")
        std = float((0.5 * logvar[0]).exp())
        expect_close(float(z.mean()), 1.5, f"{what}: the mean", atol=5 * std / 20000 ** 0.5, rtol=0)
        expect_close(float(z.std()), std, f"{what}: the standard deviation", atol=0.05 * std, rtol=0,
                     hint="the standard deviation is exp(logvar / 2)")
    return checks
