"""HW2 probes: scenarios that run INSIDE the sandbox against the student's module ``ns``. They build
the student's objects from what the suite sends (weights, inputs, seeds), run them and return raw
outputs; every expected value is computed by the grader in the parent."""
import torch

from genai_course.grading.weights import PointMassDenoiser, StandInDenoiser, load_reference


def _noise_fn(seed):
    gen = torch.Generator().manual_seed(seed)
    calls = []

    def noise_fn(shape):
        calls.append(1)
        return torch.randn(tuple(shape), generator=gen)

    return noise_fn, calls


def _loaded(module, state):
    missing, extra = load_reference(module, state)
    return {"missing": missing, "extra": extra}


def module_out(ns, cls, width, state, inputs, train=False):
    """Build ns.<cls>(width), load the reference's weights, run it on `inputs` (a list) in train or eval mode."""
    model = getattr(ns, cls)(width)
    info = _loaded(model, state)
    if info["missing"] or info["extra"]:
        return {**info, "out": None}
    model.train(train)
    with torch.no_grad():
        out = model(*inputs)
    return {**info, "out": out}


def _after_step(model, inputs, scale):
    """Outputs of `model` (eval) on inputs, and with every parameter moved by -scale * its .grad: the
    gradients, judged by what they do to the network rather than by parameter names or order."""
    model.eval()
    with torch.no_grad():
        out = model(*inputs)
        saved = [p.detach().clone() for p in model.parameters()]
        for p in model.parameters():
            if p.grad is not None:
                p.sub_(scale * p.grad)
        moved = model(*inputs)
        for p, s in zip(model.parameters(), saved):
            p.copy_(s)
    return out, moved


def gan_step(ns, width, state_g, state_d, real, mask, lambda_rec, lr, probe_x, probe_m, scale):
    G, D = ns.InpaintGenerator(width), ns.Discriminator(width)
    info_g, info_d = _loaded(G, state_g), _loaded(D, state_d)
    if info_g["missing"] or info_g["extra"] or info_d["missing"] or info_d["extra"]:
        return {"g": info_g, "d": info_d, "losses": None}
    G.train(), D.train()
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=lr), torch.optim.SGD(D.parameters(), lr=lr)
    losses = ns.gan_train_step(G, D, opt_g, opt_d, real, mask, lambda_rec)
    requires = [bool(p.requires_grad) for p in D.parameters()]
    g_out, g_moved = _after_step(G, (probe_x, probe_m), scale)
    d_out, d_moved = _after_step(D, (probe_x,), scale)
    return {"g": info_g, "d": info_d, "losses": losses, "d_requires_grad": requires,
            "g_out": g_out, "g_moved": g_moved, "d_out": d_out, "d_moved": d_moved}


def schedule_attrs(ns, betas, names):
    s = ns.DiffusionSchedule(betas)
    return {"T": getattr(s, "T", None), **{n: getattr(s, n, None) for n in names}}


def _sched(ns, betas):
    return ns.DiffusionSchedule(betas)


def q_sample(ns, betas, x0, t, noise):
    return ns.q_sample(_sched(ns, betas), x0, t, noise)


def p_losses(ns, betas, weight, gain, x0, t, noise):
    return ns.p_losses(_sched(ns, betas), StandInDenoiser(weight, gain), x0, t, noise)


def p_sample(ns, betas, weight, gain, x_t, t, noise):
    return ns.p_sample(_sched(ns, betas), StandInDenoiser(weight, gain), x_t, t, noise)


def p_sample_loop(ns, betas, weight, gain, shape, seed, center=None):
    noise_fn, calls = _noise_fn(seed)
    model = StandInDenoiser(weight, gain) if center is None else PointMassDenoiser(torch.cumprod(1 - betas, 0), center, weight, gain)
    out = ns.p_sample_loop(_sched(ns, betas), model, shape, noise_fn)
    return {"out": out, "noise_calls": len(calls)}


def ddim_step(ns, betas, weight, gain, x_t, t, t_prev, eta, noise):
    return ns.ddim_step(_sched(ns, betas), StandInDenoiser(weight, gain), x_t, t, t_prev, eta, noise)


def ddim_sample(ns, betas, weight, gain, shape, steps, eta, seed, center=None):
    """With `center`, the network is the point-mass denoiser for that constant image (clipping never acts)."""
    noise_fn, calls = _noise_fn(seed)
    model = StandInDenoiser(weight, gain) if center is None else PointMassDenoiser(torch.cumprod(1 - betas, 0), center, weight, gain)
    out = ns.ddim_sample(_sched(ns, betas), model, shape, steps, eta, noise_fn)
    return {"out": out, "noise_calls": len(calls)}


def repaint(ns, betas, weight, gain, image, mask, seed, jump_length, n_resample):
    noise_fn, calls = _noise_fn(seed)
    out = ns.repaint(_sched(ns, betas), StandInDenoiser(weight, gain), image, mask, noise_fn,
                     jump_length=jump_length, n_resample=n_resample)
    return {"out": out, "noise_calls": len(calls)}
