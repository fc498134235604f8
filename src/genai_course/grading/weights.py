"""Comparing a student's module with the reference under the same weights.

The suite (parent) gives the reference module seeded random weights with ``random_state`` and sends
them, layer by layer, to a probe; the probe (inside the sandbox) builds the student's module and loads
them with ``load_reference``; the suite compares both modules' outputs on the same inputs and reports
layers that did not match with ``expect_loaded``. Layers are matched by path where the names agree,
otherwise by parameter names and shapes in registration order, so names a docstring leaves open (the
MLP's layers, the list of blocks) may differ.
"""
from __future__ import annotations

import torch


def leaves(model) -> list[tuple[str, dict]]:
    """(path, {name: parameter}) of every module that owns parameters, in registration order; a tied
    parameter counts once, where it is first met (lm_head shares tok_emb.weight)."""
    seen, out = set(), []
    for path, m in model.named_modules():
        params = {n: p for n, p in m.named_parameters(recurse=False) if id(p) not in seen}
        seen.update(id(p) for p in params.values())
        if params:
            out.append((path, params))
    return out


def _signature(params: dict) -> tuple:
    return tuple(sorted((n, tuple(t.shape)) for n, t in params.items()))


def _describe(path: str, params: dict) -> str:
    return f"{path or '<model>'} ({', '.join(f'{n} {list(s)}' for n, s in _signature(params))})"


def random_state(model, g: torch.Generator) -> list:
    """Parent side: give the reference module random weights (LayerNorm gains near 1, small biases,
    matrices scaled by 1/sqrt(fan-in)) and return them as [path, {param: tensor}] per layer."""
    with torch.no_grad():
        for _, params in leaves(model):
            for name, p in params.items():
                if p.dim() == 1:
                    p.copy_((1.0 if name.startswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * p[0].numel() ** -0.5)
    return [[path, {n: p.detach().clone() for n, p in params.items()}] for path, params in leaves(model)]


def load_reference(model, state: list) -> tuple[list[str], list[str]]:
    """Sandbox side: load the reference's weights ``state`` into ``model`` with load_state_dict.
    Returns (reference layers with no match, student layers left over)."""
    mine = leaves(model)
    by_path = dict(mine)
    used, values, pending = set(), {}, []
    for path, ref_params in state:
        if path in by_path and _signature(by_path[path]) == _signature(ref_params):
            used.add(path)
            values.update({id(by_path[path][n]): t for n, t in ref_params.items()})
        else:
            pending.append((path, ref_params))
    rest = [(p, ps) for p, ps in mine if p not in used]
    missing = []
    for path, ref_params in pending:
        for i, (p, ps) in enumerate(rest):
            if _signature(ps) == _signature(ref_params):
                values.update({id(ps[n]): t for n, t in ref_params.items()})
                del rest[i]
                break
        else:
            missing.append(_describe(path, ref_params))
    sd = model.state_dict(keep_vars=True)
    model.load_state_dict({k: values.get(id(v), v.detach()) for k, v in sd.items()})
    return missing, [_describe(p, ps) for p, ps in rest]


def expect_loaded(got: dict, what: str, hint: str = "build exactly the layers the docstring lists (types, shapes, biases)") -> None:
    """Parent side: fail unless the probe loaded every reference layer and nothing was left over."""
    from .api import expect

    expect(not got["missing"] and not got["extra"], what,
           "could not load the reference's weights: "
           + "; ".join([f"no layer like {m}" for m in got["missing"][:3]] + [f"unexpected layer {e}" for e in got["extra"][:3]]),
           hint=hint)


class StandInDenoiser(torch.nn.Module):
    """A fixed, cheap stand-in for a trained noise-prediction network, ``eps(x_t, t)``: a 3x3 convolution
    with the given weight squashed by tanh and scaled by ``gain``, plus a term that depends on the
    timestep. Suites build it in the parent and probes build the same one in the sandbox from the same
    tensor, so a sampler is compared step by step with the reference: passing the wrong timestep, using
    the wrong constants or calling the network in another order changes the numbers. ``t`` may be a
    (B,) tensor, a 0-d tensor or an int."""

    def __init__(self, weight: torch.Tensor, gain: float = 1.0):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.gain = float(gain)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        h = torch.nn.functional.conv2d(x, self.weight.to(x.dtype), padding=self.weight.shape[-1] // 2)
        return self.gain * torch.tanh(h) + 0.3 * torch.sin(0.37 * t + 0.5)


class PointMassDenoiser(StandInDenoiser):
    """The ideal noise predictor for data that is always the constant image ``center`` (|center| <= 0.5),
    ``(x - sqrt(abar_t) c) / sqrt(1 - abar_t)``, plus a small x-dependent perturbation scaled by
    ``sqrt(abar_t)``. Its x0 estimate ``c - sqrt(1 - abar_t) * perturbation`` stays inside [-1, 1], so
    clipping never acts, and samplers that agree mathematically without clipping (DDIM with eta = 1
    over every step, and DDPM) must agree numerically."""

    def __init__(self, alphas_cumprod: torch.Tensor, center: float, weight: torch.Tensor, gain: float = 0.4):
        super().__init__(weight, gain)
        self.register_buffer("abar", torch.as_tensor(alphas_cumprod, dtype=torch.float32).detach().clone())
        self.center = float(center)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).long().reshape(-1)
        a = self.abar.to(x.device)[t].reshape(-1, *([1] * (x.dim() - 1)))
        h = torch.nn.functional.conv2d(x, self.weight.to(x.dtype), padding=self.weight.shape[-1] // 2)
        return (x - a.sqrt() * self.center) / (1 - a).sqrt() + a.sqrt() * self.gain * torch.tanh(h)
