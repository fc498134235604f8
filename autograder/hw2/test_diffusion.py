"""HW2 hidden suite, Part B: schedules (reference and diffusers as oracles), the forward process and
loss, and every sampler step by step under a fixed noise source and a fixed stand-in network."""
import torch

from genai_course.grading import Checks, expect, expect_close, expect_equal, graded, reference
from genai_course.grading.weights import PointMassDenoiser, StandInDenoiser

ref = reference("hw2")

NAMES = ["betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
         "sqrt_one_minus_alphas_cumprod", "posterior_variance", "posterior_mean_coef1", "posterior_mean_coef2"]


def _diffusers(kind, T, **kw):
    from diffusers import DDIMScheduler, DDPMScheduler

    cls = DDIMScheduler if kind == "ddim" else DDPMScheduler
    return cls(num_train_timesteps=T, trained_betas=ref.cosine_beta_schedule(T).float().numpy(), **kw)


def _standin(g, channels=1, gain=1.0):
    return torch.randn(channels, channels, 3, 3, generator=g) * 0.4, gain


def _ref_noise(seed):
    gen = torch.Generator().manual_seed(seed)
    return lambda shape: torch.randn(tuple(shape), generator=gen)


@graded(points=3)
def test_schedules(student):
    """linear and cosine beta schedules: reference values, and diffusers' schedulers as an oracle"""
    from diffusers import DDPMScheduler

    checks = Checks()
    for T in (1000, 200, 37):
        with checks.case(f"linear_beta_schedule({T})"):
            got = student.call("linear_beta_schedule", T)
            oracle = DDPMScheduler(num_train_timesteps=T, beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T).betas
            expect_close(got, ref.linear_beta_schedule(T), f"linear_beta_schedule({T})", atol=1e-10, rtol=1e-7,
                         hint="evenly spaced from 1e-4 to 0.02, both multiplied by 1000 / T; float64")
            expect_close(got, oracle.double(), f"linear_beta_schedule({T}) against diffusers' DDPMScheduler", atol=1e-7)
    for T, s in ((1000, 0.008), (200, 0.008), (37, 0.008), (50, 0.05)):
        with checks.case(f"cosine_beta_schedule({T}, s={s})"):
            got = student.call("cosine_beta_schedule", T, s)
            expect_close(got, ref.cosine_beta_schedule(T, s), f"cosine_beta_schedule({T}, s={s})", atol=1e-10, rtol=1e-6,
                         hint="alpha_bar(u) = f(u) / f(0) for u = 0..T; beta_t = 1 - alpha_bar(t+1) / alpha_bar(t), "
                              "at most 0.999; compute in float64")
            if s == 0.008:
                oracle = DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2").betas
                expect_close(got, oracle.double(), f"cosine_beta_schedule({T}) against diffusers' squaredcos_cap_v2",
                             atol=1e-6)
    return checks


@graded(points=2)
def test_diffusion_schedule(student):
    """DiffusionSchedule: every derived constant, T, and float32 storage"""
    checks = Checks()
    for label, betas in (("cosine, T=200", ref.cosine_beta_schedule(200)), ("linear, T=30", ref.linear_beta_schedule(30))):
        with checks.case(label):
            got = student.probe("schedule_attrs", betas=betas, names=NAMES)
            exp = ref.DiffusionSchedule(betas)
            expect_equal(got["T"], exp.T, f"DiffusionSchedule({label}).T")
            for name in NAMES:
                expect(isinstance(got[name], torch.Tensor) and got[name].dtype == torch.float32,
                       f"DiffusionSchedule({label}).{name}", f"is {type(got[name]).__name__} "
                       f"{getattr(got[name], 'dtype', '')}, not a float32 tensor", hint="compute in float64, store .float()")
                expect_close(got[name], getattr(exp, name), f"DiffusionSchedule({label}).{name}", atol=1e-6, rtol=1e-5,
                             hint="alpha_bar_{-1} = 1; posterior terms follow DDPM eq. 7")
    return checks


@graded(points=2)
def test_q_sample(student):
    """q_sample: exact for given noise, one timestep per image, any number of channels; right in distribution"""
    g = student.rng()
    checks = Checks()
    betas = ref.cosine_beta_schedule(100)
    s = ref.DiffusionSchedule(betas)
    for label, shape in (("MNIST-like batch", (5, 1, 32, 32)), ("3 channels", (3, 3, 8, 8))):
        with checks.case(label):
            x0, noise = torch.rand(shape, generator=g) * 2 - 1, torch.randn(shape, generator=g)
            t = torch.randint(0, 100, (shape[0],), generator=g)
            t[0], t[-1] = 0, 99
            expect_close(student.probe("q_sample", betas=betas, x0=x0, t=t, noise=noise), ref.q_sample(s, x0, t, noise),
                         f"q_sample(x0 {shape}, t={t.tolist()}, noise)", atol=1e-5,
                         hint="each image uses its own t: extract(sched.sqrt_alphas_cumprod, t, x0.dim())")
    with checks.case("distribution of x_t for standard-normal noise"):
        n = 4000
        x0 = torch.full((n, 1, 1, 1), 0.7)
        t = torch.full((n,), 40)
        got = student.probe("q_sample", betas=betas, x0=x0, t=t, noise=torch.randn(n, 1, 1, 1, generator=g))
        mean, std = float(s.sqrt_alphas_cumprod[40] * 0.7), float(s.sqrt_one_minus_alphas_cumprod[40])
        expect_close(float(got.mean()), mean, "mean of q_sample(0.7, t=40) over 4000 draws", atol=4 * std / n ** 0.5)
        expect_close(float(got.std()), std, "standard deviation of q_sample(0.7, t=40) over 4000 draws", atol=0.05 * std,
                     hint="the noise is scaled by sqrt(1 - alpha_bar_t), not (1 - alpha_bar_t)")
    return checks


@graded(points=1)
def test_p_losses(student):
    """p_losses: equals the reference for fixed t and noise with a stand-in network"""
    g = student.rng()
    betas = ref.cosine_beta_schedule(60)
    weight, gain = _standin(g)
    x0, noise = torch.rand(6, 1, 16, 16, generator=g) * 2 - 1, torch.randn(6, 1, 16, 16, generator=g)
    t = torch.randint(0, 60, (6,), generator=g)
    expect_close(student.probe("p_losses", betas=betas, weight=weight, gain=gain, x0=x0, t=t, noise=noise),
                 ref.p_losses(ref.DiffusionSchedule(betas), StandInDenoiser(weight, gain), x0, t, noise),
                 "p_losses(sched, model, x0, t, noise)", atol=1e-5, rtol=1e-5,
                 hint="MSE between noise and model(q_sample(sched, x0, t, noise), t), averaged over every element")


@graded(points=2)
def test_p_sample(student):
    """p_sample: one reverse step equals the reference and diffusers' DDPMScheduler (clipping, t = 0, last t)"""
    g = student.rng()
    checks = Checks()
    T = 50
    betas = ref.cosine_beta_schedule(T)
    s = ref.DiffusionSchedule(betas)
    for t, gain in ((T - 1, 1.0), (23, 0.3), (23, 3.0), (1, 1.0), (0, 1.0)):
        label = f"t={t}, stand-in gain {gain}" + (" (x0_hat clipping matters)" if gain > 1 else "")
        with checks.case(label):
            weight, _ = _standin(g)
            x_t = torch.randn(3, 1, 8, 8, generator=g) * (1.0 if t > 10 else 0.6)
            seed = int(torch.randint(0, 2 ** 31, (1,), generator=g))
            noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
            got = student.probe("p_sample", betas=betas, weight=weight, gain=gain, x_t=x_t, t=t,
                                noise=noise if t > 0 else None)
            model = StandInDenoiser(weight, gain)
            expect_close(got, ref.p_sample(s, model, x_t, t, noise if t > 0 else None), f"p_sample(..., t={t})",
                         atol=1e-5, rtol=1e-4,
                         hint="eps -> x0_hat clamped to [-1, 1] -> posterior mean; add sqrt(posterior_variance[t]) * noise "
                              "only when t > 0; the model gets a (B,) tensor filled with t")
            oracle = _diffusers("ddpm", T, clip_sample=True, variance_type="fixed_small")
            eps = model(x_t, torch.full((3,), t))
            expect_close(got, oracle.step(eps, t, x_t, generator=torch.Generator().manual_seed(seed)).prev_sample,
                         f"p_sample(..., t={t}) against diffusers' DDPMScheduler.step", atol=1e-4, rtol=1e-4)
    return checks


@graded(points=2, timeout=20)
def test_p_sample_loop(student):
    """p_sample_loop: the whole DDPM chain equals the reference under a seeded noise_fn (T noise draws, in order)"""
    g = student.rng()
    checks = Checks()
    for T, shape in ((20, (2, 1, 8, 8)), (33, (3, 1, 4, 4))):
        with checks.case(f"T={T}, shape {shape}"):
            betas = ref.linear_beta_schedule(T) if T == 33 else ref.cosine_beta_schedule(T)
            weight, gain = _standin(g)
            seed = int(torch.randint(0, 2 ** 31, (1,), generator=g))
            got = student.probe("p_sample_loop", betas=betas, weight=weight, gain=gain, shape=shape, seed=seed)
            expected = ref.p_sample_loop(ref.DiffusionSchedule(betas), StandInDenoiser(weight, gain), shape, _ref_noise(seed))
            expect_close(got["out"], expected, f"p_sample_loop(T={T}, shape={shape})", atol=1e-4, rtol=1e-4,
                         hint=f"x = noise_fn(shape), then t = T-1 ... 0 with noise_fn(shape) only when t > 0 "
                              f"(noise_fn was called {got['noise_calls']} times; the reference calls it {T} times)")
    return checks


@graded(points=2)
def test_ddim_step(student):
    """ddim_step: equals the reference and diffusers' DDIMScheduler for eta = 0, 0.5, 1 and the final step"""
    g = student.rng()
    checks = Checks()
    T = 60
    betas = ref.cosine_beta_schedule(T)
    s = ref.DiffusionSchedule(betas)
    for t, t_prev, eta, gain in ((59, 49, 0.0, 1.0), (30, 20, 0.5, 1.0), (45, 40, 1.0, 3.0), (5, -5, 0.0, 1.0), (12, 9, 0.7, 0.5)):
        label = f"t={t} -> {t_prev}, eta={eta}"
        with checks.case(label):
            weight, _ = _standin(g)
            x_t = torch.randn(2, 1, 8, 8, generator=g)
            seed = int(torch.randint(0, 2 ** 31, (1,), generator=g))
            noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) if eta > 0 else None
            got = student.probe("ddim_step", betas=betas, weight=weight, gain=gain, x_t=x_t, t=t, t_prev=t_prev, eta=eta,
                                noise=noise)
            model = StandInDenoiser(weight, gain)
            expect_close(got, ref.ddim_step(s, model, x_t, t, t_prev, eta, noise), f"ddim_step({label})", atol=1e-5, rtol=1e-4,
                         hint="alpha_bar_prev = 1 when t_prev < 0; sigma = eta * sqrt((1-a_prev)/(1-a_t)) * sqrt(1 - a_t/a_prev); "
                              "the direction term uses the model's eps")
            if t - t_prev == 10 or t_prev < 0:
                steps = T // (t - t_prev)
                oracle = _diffusers("ddim", T, clip_sample=True, set_alpha_to_one=True)
                oracle.set_timesteps(steps)
                eps = model(x_t, torch.full((2,), t))
                out = oracle.step(eps, t, x_t, eta=eta, generator=torch.Generator().manual_seed(seed)).prev_sample
                expect_close(got, out, f"ddim_step({label}) against diffusers' DDIMScheduler.step", atol=1e-4, rtol=1e-4)
    return checks


@graded(points=2, timeout=20)
def test_ddim_sample(student):
    """ddim_sample: the step sequence and noise draws equal the reference's; eta = 1 over every step is DDPM"""
    g = student.rng()
    checks = Checks()
    for T, steps, eta in ((40, 10, 0.0), (40, 6, 0.0), (30, 7, 0.8)):
        with checks.case(f"T={T}, steps={steps}, eta={eta}"):
            betas = ref.cosine_beta_schedule(T)
            weight, gain = _standin(g)
            seed = int(torch.randint(0, 2 ** 31, (1,), generator=g))
            shape = (2, 1, 8, 8)
            got = student.probe("ddim_sample", betas=betas, weight=weight, gain=gain, shape=shape, steps=steps, eta=eta, seed=seed)
            expected = ref.ddim_sample(ref.DiffusionSchedule(betas), StandInDenoiser(weight, gain), shape, steps, eta, _ref_noise(seed))
            expect_close(got["out"], expected, f"ddim_sample(T={T}, steps={steps}, eta={eta})", atol=1e-4, rtol=1e-4,
                         hint=f"stride = T // steps, timesteps (steps-1)*stride ... 0; noise_fn once for x, then once per step "
                              f"when eta > 0 (yours: {got['noise_calls']} calls)")
    with checks.case("eta = 1 over all T steps equals DDPM under the same noise"):
        T = 25
        betas = ref.cosine_beta_schedule(T)
        weight, _ = _standin(g)
        seed = int(torch.randint(0, 2 ** 31, (1,), generator=g))
        center = 0.1 + 0.3 * float(torch.rand(1, generator=g))
        got = student.probe("ddim_sample", betas=betas, weight=weight, gain=0.4, shape=(2, 1, 8, 8), steps=T, eta=1.0,
                            seed=seed, center=center)
        model = PointMassDenoiser(torch.cumprod(1 - betas, 0), center, weight, 0.4)
        ddpm = ref.p_sample_loop(ref.DiffusionSchedule(betas), model, (2, 1, 8, 8), _ref_noise(seed))
        expect_close(got["out"], ddpm, "ddim_sample(steps=T, eta=1) against DDPM's p_sample_loop (a network whose x0 "
                     "estimate never needs clipping)", atol=1e-3, rtol=1e-3,
                     hint="with eta = 1, sigma^2 equals the DDPM posterior variance")
    return checks


@graded(points=4, timeout=30)
def test_repaint(student):
    """repaint: equals the reference step by step (jumps, resampling), known pixels exact, n_resample x T model calls"""
    g = student.rng()
    checks = Checks()
    for T, jump, n_res in ((20, 5, 3), (23, 4, 2), (12, 3, 1), (15, 15, 2)):
        label = f"T={T}, jump_length={jump}, n_resample={n_res}"
        with checks.case(label):
            betas = ref.cosine_beta_schedule(T)
            weight, gain = _standin(g)
            image = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
            mask = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
            seed = int(torch.randint(0, 2 ** 31, (1,), generator=g))
            got = student.probe("repaint", betas=betas, weight=weight, gain=gain, image=image, mask=mask, seed=seed,
                                jump_length=jump, n_resample=n_res)
            expected = ref.repaint(ref.DiffusionSchedule(betas), StandInDenoiser(weight, gain), image, mask, _ref_noise(seed),
                                   jump_length=jump, n_resample=n_res)
            expect(isinstance(got["out"], torch.Tensor) and got["out"].shape == image.shape
                   and torch.equal(got["out"] * mask, image * mask), f"repaint({label})",
                   "the known pixels of the result are not exactly the image's", hint="the last step uses known = image")
            expect_close(got["out"], expected, f"repaint({label})", atol=1e-4, rtol=1e-4,
                         hint="per block: n_resample descents, a one-draw jump back to level hi between them; per step "
                              "t > 0: noise_fn for the known part first, then for p_sample "
                              f"(noise_fn was called {got['noise_calls']} times)")
    return checks
