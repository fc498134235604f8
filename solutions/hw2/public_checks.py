"""Public checks of HW2, run by `genai-course check hw2.ipynb`: one or more per graded definition, on
small inputs with answers that follow from the docstrings (known values, an ideal denoiser whose x0
estimate is exact, layer shapes). When a result is wrong, the check names the common bug it matches.
The hidden suite compares everything with the reference under the same weights and a fixed noise
source, on other inputs."""
import math

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, expect, expect_close, expect_equal, graded
from genai_course.grading.api import diagnose


def _shapes(width, cls):
    w = width
    if cls == "Discriminator":
        return {"net.0.weight": [w, 1, 4, 4], "net.0.bias": [w], "net.2.weight": [2 * w, w, 4, 4], "net.2.bias": [2 * w],
                "net.4.weight": [4 * w, 2 * w, 4, 4], "net.4.bias": [4 * w], "net.6.weight": [1, 4 * w, 4, 4], "net.6.bias": [1]}
    out = {"enc1.0.weight": [w, 2, 4, 4], "enc1.0.bias": [w]}
    for name, c_in, c_out, conv in (("enc2", w, 2 * w, "conv"), ("enc3", 2 * w, 4 * w, "conv"),
                                    ("dec3", 4 * w, 2 * w, "up"), ("dec2", 4 * w, w, "up")):
        out[f"{name}.0.weight"] = [c_in, c_out, 4, 4] if conv == "up" else [c_out, c_in, 4, 4]
        out[f"{name}.0.bias"] = [c_out]
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.1.{k}"] = [c_out]
        out[f"{name}.1.num_batches_tracked"] = []
    out.update({"dec1.weight": [2 * w, 1, 4, 4], "dec1.bias": [1]})
    return out


def _random_state(shapes, g):
    state = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(0)
        elif k.endswith("running_var"):
            state[k] = 1 + 0.1 * torch.rand(s, generator=g)
        elif len(s) == 1:
            state[k] = 0.1 * torch.randn(s, generator=g) + (1.0 if k.endswith("1.weight") else 0.0)
        else:
            state[k] = torch.randn(s, generator=g) * (s[1] * 16) ** -0.5
    return state


def _discriminator(state, x):
    h = x
    for i in (0, 2, 4):
        h = F.leaky_relu(F.conv2d(h, state[f"net.{i}.weight"], state[f"net.{i}.bias"], stride=2, padding=1), 0.2)
    return F.conv2d(h, state["net.6.weight"], state["net.6.bias"]).flatten()


def _bn(h, state, name):
    return F.batch_norm(h, state[f"{name}.1.running_mean"], state[f"{name}.1.running_var"], state[f"{name}.1.weight"],
                        state[f"{name}.1.bias"], training=False)


def _generator(state, image, mask, masked=True, skip_first=False, tanh=True):
    conv = lambda h, n: F.conv2d(h, state[f"{n}.0.weight"], state[f"{n}.0.bias"], stride=2, padding=1)  # noqa: E731
    up = lambda h, n: F.conv_transpose2d(h, state[f"{n}.0.weight"], state[f"{n}.0.bias"], stride=2, padding=1)  # noqa: E731
    e1 = F.leaky_relu(conv(torch.cat([image * mask if masked else image, mask], 1), "enc1"), 0.2)
    e2 = F.leaky_relu(_bn(conv(e1, "enc2"), state, "enc2"), 0.2)
    e3 = F.leaky_relu(_bn(conv(e2, "enc3"), state, "enc3"), 0.2)
    d3 = F.relu(_bn(up(e3, "dec3"), state, "dec3"))
    cat = (lambda a, b: torch.cat([b, a], 1)) if skip_first else (lambda a, b: torch.cat([a, b], 1))
    d2 = F.relu(_bn(up(cat(d3, e2), "dec2"), state, "dec2"))
    out = F.conv_transpose2d(cat(d2, e1), state["dec1.weight"], state["dec1.bias"], stride=2, padding=1)
    return torch.tanh(out) if tanh else out


@graded(points=1)
def check_compose(student):
    """compose keeps known pixels from the image"""
    image, pred = torch.full((1, 1, 2, 2), 5.0), torch.full((1, 1, 2, 2), -3.0)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    got = student.call("compose", pred, image, mask)
    expect_equal(got, torch.tensor([[[[5.0, -3.0], [-3.0, 5.0]]]]), "compose(pred=-3, image=5, checkerboard mask)",
                 hint=diagnose(got, {"the mask is inverted: 1 = known pixel, which comes from image":
                                     torch.tensor([[[[-3.0, 5.0], [5.0, -3.0]]]])}))


@graded(points=1)
def check_networks(student):
    """Discriminator and InpaintGenerator: the checkpoint's layer names and shapes, and outputs under given weights"""
    checks = Checks()
    g = torch.Generator().manual_seed(0)
    for cls in ("Discriminator", "InpaintGenerator"):
        with checks.case(f"{cls}(8) layer names and shapes"):
            expect_equal(student.probe("module_state", cls=cls, width=8), _shapes(8, cls), f"{cls}(8).state_dict() shapes",
                         hint="name and order the layers exactly as the docstring lists them (the checkpoint loads with strict=True)")
    x = torch.randn(3, 1, 32, 32, generator=g).clamp(-1, 1)
    with checks.case("Discriminator(8) logits"):
        state = _random_state(_shapes(8, "Discriminator"), g)
        got = student.probe("module_out", cls="Discriminator", width=8, state=state, inputs=[x])
        expect_close(got, _discriminator(state, x), "Discriminator(8)(x) with given weights", atol=1e-4,
                     hint=diagnose(got, {"do not apply a sigmoid: return logits": torch.sigmoid(_discriminator(state, x))},
                                   default="LeakyReLU(0.2) after every conv but the last; flatten to (B,)"))
    with checks.case("InpaintGenerator(8) images (eval mode)"):
        state = _random_state(_shapes(8, "InpaintGenerator"), g)
        mask = torch.ones(3, 1, 32, 32)
        mask[..., 8:24, 8:24] = 0
        image = x + 2 * (1 - mask)  # something in the hole that must not matter
        got = student.probe("module_out", cls="InpaintGenerator", width=8, state=state, inputs=[image, mask])
        expect_close(got, _generator(state, image, mask), "InpaintGenerator(8)(image, mask) with given weights", atol=1e-4,
                     hint=diagnose(got, {
                         "the missing pixels leak in: the first layer must see image * mask": _generator(state, image, mask, masked=False),
                         "skip connections in the wrong order: cat([d3, e2]) and cat([d2, e1])": _generator(state, image, mask, skip_first=True),
                         "missing the final tanh": _generator(state, image, mask, tanh=False)}))
    return checks


@graded(points=1)
def check_losses(student):
    """discriminator_loss and generator_loss: known values, stable for huge logits"""
    checks = Checks()
    zero = torch.zeros(4)
    with checks.case("discriminator_loss at logit 0 is 2 log 2"):
        got = student.call("discriminator_loss", zero, zero)
        expect_close(got, torch.tensor(2 * math.log(2)), "discriminator_loss(zeros, zeros)",
                     hint=diagnose(got, {"the two terms are averaged: add them": torch.tensor(math.log(2))}))
    with checks.case("discriminator_loss for confident, right logits (+-200)"):
        got = student.call("discriminator_loss", torch.full((2,), 200.0), torch.full((2,), -200.0))
        expect_close(got, torch.tensor(0.0), "discriminator_loss(200, -200)", atol=1e-5,
                     hint="use F.binary_cross_entropy_with_logits (or softplus): log(sigmoid(x)) overflows")
    real, fake, mask = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    mask[:, :, :2, :2] = 0  # 8 missing pixels of 32
    with checks.case("generator_loss: MSE over the hole only"):
        got = student.call("generator_loss", torch.zeros(2), fake, real, mask, 10.0)
        expect_close(got, torch.tensor(math.log(2) + 10.0),
                     "generator_loss(logits 0, fake 1, real 0, 8 of 32 pixels missing, lambda 10)", atol=1e-5,
                     hint=diagnose(got, {k: torch.tensor(v) for k, v in {
                         "the MSE is averaged over all pixels; average over the missing ones": math.log(2) + 10.0 * 8 / 32,
                         "saturating loss: use -log sigmoid(D(fake)), not log(1 - sigmoid(D(fake)))": -math.log(2) + 10.0,
                         "lambda_rec is not applied": math.log(2) + 1.0}.items()}))
    return checks


@graded(points=1)
def check_gan_train_step(student):
    """gan_train_step: returns both losses, leaves D's grads from the D step only, restores requires_grad"""
    g = torch.Generator().manual_seed(1)
    real = torch.randn(6, 1, 32, 32, generator=g).clamp(-1, 1)
    mask = torch.ones(6, 1, 32, 32)
    mask[..., 10:22, 10:22] = 0
    got = student.probe("gan_step", real=real, mask=mask, lambda_rec=5.0)
    expect(isinstance(got["losses"], dict) and set(got["losses"]) == {"d_loss", "g_loss"}, "gan_train_step(...)",
           f"returned {str(got['losses'])[:80]}", hint='return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}')
    expect(got["d_requires_grad"], "D after gan_train_step", "some parameters still have requires_grad=False",
           hint="restore D.requires_grad_(True) after the G step (in a finally block)")
    expect(got["d_grad_is_d_step"], "D's .grad after the step", "is not the gradient of the D loss alone",
           hint="freeze D during the G step, or the G step's backward adds its gradients to D's .grad")
    expect(got["g_grad_is_g_step"], "G's .grad after the step", "is not the gradient of the G loss alone",
           hint="D sees fake.detach(); call opt_g.zero_grad() right before g_loss.backward()")


def _cosine(T, s=0.008, clip=0.999):
    f = [math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2 for u in range(T + 1)]
    return torch.tensor([min(1 - f[t + 1] / f[t], clip) for t in range(T)], dtype=torch.float64)


@graded(points=1)
def check_schedules(student):
    """linear_beta_schedule and cosine_beta_schedule: end points, scaling, clipping, dtype"""
    checks = Checks()
    with checks.case("linear_beta_schedule(1000) and (100)"):
        got = student.call("linear_beta_schedule", 1000)
        expect_close(got, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), "linear_beta_schedule(1000)", atol=1e-12)
        got = student.call("linear_beta_schedule", 100)
        expect_close(got, torch.linspace(1e-3, 0.2, 100, dtype=torch.float64), "linear_beta_schedule(100)", atol=1e-12,
                     hint=diagnose(got, {"both ends must be scaled by 1000 / T": torch.linspace(1e-4, 0.02, 100, dtype=torch.float64)}))
    with checks.case("cosine_beta_schedule(20)"):
        got = student.call("cosine_beta_schedule", 20)
        expect_equal(str(got.dtype), "torch.float64", "cosine_beta_schedule(20).dtype", hint="compute in float64")
        expect_close(got, _cosine(20), "cosine_beta_schedule(20)", atol=1e-10,
                     hint=diagnose(got, {"clip the betas at 0.999": _cosine(20, clip=1.0)}))
    return checks


@graded(points=1)
def check_diffusion_schedule(student):
    """DiffusionSchedule: cumulative products, alpha_bar_{-1} = 1, posterior terms"""
    betas = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    got = student.probe("schedule", betas=betas)
    abar = torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64)
    prev = torch.tensor([1.0, 0.9, 0.72], dtype=torch.float64)
    expect_equal(got["T"], 3, "DiffusionSchedule(betas of length 3).T")
    expect_close(got["alphas_cumprod"], abar.float(), "alphas_cumprod for betas (0.1, 0.2, 0.3)", atol=1e-6)
    expect_close(got["alphas_cumprod_prev"], prev.float(), "alphas_cumprod_prev", atol=1e-6, hint="alpha_bar_{-1} = 1")
    expect_close(got["posterior_variance"], (betas * (1 - prev) / (1 - abar)).float(), "posterior_variance", atol=1e-6,
                 hint="beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t); it is 0 at t = 0")
    expect_close(got["posterior_mean_coef1"], (betas * prev.sqrt() / (1 - abar)).float(), "posterior_mean_coef1", atol=1e-6)
    expect_close(got["posterior_mean_coef2"], ((1 - prev) * (1 - betas).sqrt() / (1 - abar)).float(), "posterior_mean_coef2", atol=1e-6)


@graded(points=1)
def check_q_sample_and_loss(student):
    """q_sample follows eq. 4 per image; p_losses of a network that predicts 0 is the mean of noise^2"""
    betas = _cosine(10)
    abar = torch.cumprod(1 - betas, 0).float()
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1, torch.randn(3, 1, 4, 4, generator=g)
    t = torch.tensor([0, 4, 9])
    want = abar[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - abar[t]).sqrt().view(-1, 1, 1, 1) * noise
    got = student.probe("q_sample", betas=betas, x0=x0, t=t, noise=noise)
    expect_close(got, want, "q_sample(x0, t=[0, 4, 9], noise)", atol=1e-5, hint=diagnose(got, {
        "the noise is scaled by (1 - alpha_bar_t); use its square root": abar[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - abar[t]).view(-1, 1, 1, 1) * noise,
        "every image used t[0]: index with the whole t": abar[0].sqrt() * x0 + (1 - abar[0]).sqrt() * noise}))
    got = student.probe("p_losses_zero_model", betas=betas, x0=x0, t=t, noise=noise)
    expect_close(got, noise.pow(2).mean(), "p_losses with a network that always predicts 0", atol=1e-5,
                 hint=diagnose(got, {"the target is the noise, not x0": x0.pow(2).mean()}))


def _ideal_step(betas, center, x, t, noise):
    abar = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    c1 = float(betas[t] * prev[t].sqrt() / (1 - abar[t]))
    c2 = float((1 - prev[t]) * (1 - betas[t]).sqrt() / (1 - abar[t]))
    var = float(betas[t] * (1 - prev[t]) / (1 - abar[t]))
    mean = c1 * center + c2 * x
    return mean if t == 0 else mean + math.sqrt(var) * noise, mean + math.sqrt(float(betas[t])) * noise


@graded(points=1)
def check_p_sample(student):
    """p_sample with an ideal denoiser (x0 estimate exact): the posterior mean plus sqrt(posterior variance) noise"""
    betas = _cosine(10)
    g = torch.Generator().manual_seed(3)
    checks = Checks()
    for t in (7, 0):
        with checks.case(f"t={t}"):
            x, noise = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
            got = student.probe("p_sample_ideal", betas=betas, center=0.3, x_t=x, t=t, noise=noise if t else None)
            want, with_beta = _ideal_step(betas, 0.3, x, t, noise)
            expect_close(got, want, f"p_sample(..., t={t}) with an ideal denoiser for the constant image 0.3", atol=1e-5,
                         hint=diagnose(got, {"the noise is scaled by sqrt(beta_t); use sqrt(posterior_variance[t])": with_beta},
                                       default="mean = coef1 * x0_hat + coef2 * x_t; no noise at t = 0"))
    return checks


@graded(points=1)
def check_samplers(student):
    """p_sample_loop and ddim_sample with an ideal denoiser reach its data; call counts and order"""
    betas = _cosine(12)
    checks = Checks()
    with checks.case("p_sample_loop"):
        got = student.probe("sampler_ideal", which="ddpm", betas=betas, center=0.3, shape=(2, 1, 4, 4), seed=0)
        expect_equal(got["model_calls"], list(range(11, -1, -1)), "timesteps the network saw in p_sample_loop (T = 12)",
                     hint="t = T-1, ..., 0, once each")
        expect_equal(got["noise_calls"], 12, "calls of noise_fn in p_sample_loop (T = 12)", hint="once for x, then once per t > 0")
        expect_close(got["out"], torch.full((2, 1, 4, 4), 0.3), "p_sample_loop with the ideal denoiser of the constant 0.3",
                     atol=1e-4, hint="the last step (t = 0) returns the mean, which is then exactly x0_hat")
    for steps, eta in ((4, 0.0), (3, 1.0)):
        with checks.case(f"ddim_sample(steps={steps}, eta={eta})"):
            got = student.probe("sampler_ideal", which="ddim", betas=betas, center=0.3, shape=(2, 1, 4, 4), seed=0, steps=steps, eta=eta)
            stride = 12 // steps
            expect_equal(got["model_calls"], [k * stride for k in range(steps - 1, -1, -1)],
                         f"timesteps the network saw in ddim_sample (T = 12, steps = {steps})", hint="k * (T // steps), largest first")
            expect_equal(got["noise_calls"], 1 + steps if eta > 0 else 1, f"calls of noise_fn (eta = {eta})")
            expect_close(got["out"], torch.full((2, 1, 4, 4), 0.3), "ddim_sample with the ideal denoiser of the constant 0.3",
                         atol=1e-4, hint="alpha_bar = 1 after the last step, so x_prev = x0_hat there")
    return checks


@graded(points=1)
def check_repaint(student):
    """repaint: known pixels exact, model calls n_resample x T in the block/jump order, noise draws counted"""
    betas = _cosine(12)
    g = torch.Generator().manual_seed(4)
    image = torch.rand(2, 1, 4, 4, generator=g) * 2 - 1
    mask = torch.ones(2, 1, 4, 4)
    mask[..., 1:3, 1:3] = 0
    got = student.probe("repaint_run", betas=betas, image=image, mask=mask, seed=0, jump_length=5, n_resample=2)
    order = [11, 10, 9, 8, 7] * 2 + [6, 5, 4, 3, 2] * 2 + [1, 0] * 2
    expect_equal(got["model_calls"], order, "timesteps the network saw (T = 12, jump_length = 5, n_resample = 2)",
                 hint="blocks [11..7], [6..2], [1..0] from the top; each descended n_resample times")
    expect_equal(got["noise_calls"], 1 + 2 * (2 * 12 - 2) + 3, "calls of noise_fn",
                 hint="1 for the start; 2 per step with t > 0 (known part, then p_sample); 1 per jump back")
    expect(torch.equal(got["out"] * mask, image * mask), "repaint(...)", "the known pixels are not exactly the image's",
           hint="at t = 0 the known part is the image itself")
