"""Public probes of HW0 (run in the sandbox by `genai-course check`): build your objects from the
inputs a check sends and return raw outputs; every expected value is computed by the check."""
import torch
import torch.nn.functional as F
from torch import nn


def _absent(ns, cls):
    """Why ns.<cls> cannot be built, or None (a probe reports it: its own errors count as the grader's)."""
    if not isinstance(getattr(ns, cls, None), type) or not issubclass(getattr(ns, cls), nn.Module):
        return f"{cls} is not defined as an nn.Module subclass"
    return None


def forward(ns, cls, kwargs, x):
    if _absent(ns, cls):
        return {"absent": _absent(ns, cls)}
    model = getattr(ns, cls)(**kwargs).eval()
    with torch.no_grad():
        out = model(x)
    return {"out": out, "n_params": sum(p.numel() for p in model.parameters()),
            "params": [p.detach() for p in model.parameters()]}


def text_forward(ns, cls, kwargs, x):
    """Output in eval mode, the embedding table and the (single) linear layer, if laid out that way."""
    if _absent(ns, cls):
        return {"absent": _absent(ns, cls)}
    model = getattr(ns, cls)(**kwargs).eval()
    with torch.no_grad():
        out = model(x)
    tables = [m.weight.detach() for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    linears = [[m.weight.detach(), m.bias.detach() if m.bias is not None else torch.zeros(m.out_features)]
               for m in model.modules() if isinstance(m, nn.Linear)]
    return {"out": out, "embedding": tables[0] if len(tables) == 1 else None,
            "linear": linears[0] if len(linears) == 1 else None}


class _Recorder(nn.Module):
    """nn.Linear that records the train/eval mode and the grad state of every forward call."""

    def __init__(self, weight, bias):
        super().__init__()
        self.lin = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(weight)
            self.lin.bias.copy_(bias)
        self.modes, self.grad_enabled = [], []

    def forward(self, x):
        self.modes.append(self.training)
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.lin(x)


class _CountingSGD(torch.optim.SGD):
    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.n_steps = 0

    def step(self, closure=None):
        self.n_steps += 1
        return super().step(closure)


def train_epochs(ns, weight, bias, batches, lr, epochs):
    """ns.train_one_epoch `epochs` times on a recorder model that starts in eval mode."""
    model = _Recorder(weight, bias).eval()
    opt = _CountingSGD(model.parameters(), lr)
    losses = [ns.train_one_epoch(model, batches, opt, F.cross_entropy) for _ in range(epochs)]
    return {"losses": losses, "steps": opt.n_steps, "modes": model.modes, "weight": model.lin.weight.detach()}


def evaluate_model(ns, weight, bias, batches, start_training):
    model = _Recorder(weight, bias)
    model.train(start_training)
    result = ns.evaluate(model, batches, F.cross_entropy)
    return {"result": result, "modes": model.modes, "grad_enabled": model.grad_enabled, "mode_after": model.training}
