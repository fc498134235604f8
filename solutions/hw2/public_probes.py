"""Public probes of HW2 (run in the sandbox by `genai-course check`): build your objects from what a
check sends and return raw outputs; every expected value is computed by the check."""
import torch


def _ideal(abar, center):
    """The ideal noise predictor for data that is always the constant `center`: its x0 estimate is exact."""
    def model(x, t):
        a = abar[torch.as_tensor(t).long().reshape(-1)].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * center) / (1 - a).sqrt()
    return model


def _counting(model, calls):
    def wrapped(x, t):
        calls.append(int(torch.as_tensor(t).reshape(-1)[0]))
        return model(x, t)
    return wrapped


def _noise(seed, calls):
    gen = torch.Generator().manual_seed(seed)

    def noise_fn(shape):
        calls.append(tuple(shape))
        return torch.randn(tuple(shape), generator=gen)
    return noise_fn


def module_state(ns, cls, width):
    model = getattr(ns, cls)(width)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def module_out(ns, cls, width, state, inputs):
    model = getattr(ns, cls)(width)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return model(*inputs)


def gan_step(ns, real, mask, lambda_rec):
    """One step with lr = 0 (weights unchanged), so the gradients the step leaves can be compared with
    the gradients of your own losses computed here."""
    torch.manual_seed(0)
    G, D = ns.InpaintGenerator(8), ns.Discriminator(8)
    G.train(), D.train()
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.0), torch.optim.SGD(D.parameters(), lr=0.0)
    losses = ns.gan_train_step(G, D, opt_g, opt_d, real, mask, lambda_rec)
    left_d = [None if p.grad is None else p.grad.clone() for p in D.parameters()]
    left_g = [None if p.grad is None else p.grad.clone() for p in G.parameters()]
    requires = all(p.requires_grad for p in D.parameters())
    fake = ns.compose(G(real, mask), real, mask)
    d_grads = torch.autograd.grad(ns.discriminator_loss(D(real), D(fake.detach())), list(D.parameters()))
    g_grads = torch.autograd.grad(ns.generator_loss(D(fake), fake, real, mask, lambda_rec), list(G.parameters()))
    same = lambda left, want: all(a is not None and torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(left, want))  # noqa: E731
    return {"losses": losses, "d_requires_grad": requires, "d_grad_is_d_step": same(left_d, d_grads),
            "g_grad_is_g_step": same(left_g, g_grads)}


def schedule(ns, betas):
    s = ns.DiffusionSchedule(betas)
    names = ["alphas_cumprod", "alphas_cumprod_prev", "posterior_variance", "posterior_mean_coef1", "posterior_mean_coef2"]
    return {"T": getattr(s, "T", None), **{n: getattr(s, n, None) for n in names}}


def q_sample(ns, betas, x0, t, noise):
    return ns.q_sample(ns.DiffusionSchedule(betas), x0, t, noise)


def p_losses_zero_model(ns, betas, x0, t, noise):
    return ns.p_losses(ns.DiffusionSchedule(betas), lambda x, tt: torch.zeros_like(x), x0, t, noise)


def p_sample_ideal(ns, betas, center, x_t, t, noise):
    s = ns.DiffusionSchedule(betas)
    return ns.p_sample(s, _ideal(s.alphas_cumprod, center), x_t, t, noise)


def sampler_ideal(ns, which, betas, center, shape, seed, steps=None, eta=0.0):
    s = ns.DiffusionSchedule(betas)
    model_calls, noise_calls = [], []
    model = _counting(_ideal(s.alphas_cumprod, center), model_calls)
    noise_fn = _noise(seed, noise_calls)
    if which == "ddpm":
        out = ns.p_sample_loop(s, model, shape, noise_fn)
    else:
        out = ns.ddim_sample(s, model, shape, steps, eta, noise_fn)
    return {"out": out, "model_calls": model_calls, "noise_calls": len(noise_calls)}


def repaint_run(ns, betas, image, mask, seed, jump_length, n_resample):
    s = ns.DiffusionSchedule(betas)
    model_calls, noise_calls = [], []
    model = _counting(lambda x, t: 0.1 * x, model_calls)
    out = ns.repaint(s, model, image, mask, _noise(seed, noise_calls), jump_length=jump_length, n_resample=n_resample)
    return {"out": out, "model_calls": model_calls, "noise_calls": len(noise_calls)}
