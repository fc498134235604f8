"""HW0 probes: scenarios that run INSIDE the sandbox against the student's module ``ns``.

They build the student's objects from inputs the grader sends, run them, and return raw results
(tensors, numbers, flags). They hold no expected values: every comparison happens in the grader.
"""
import torch
from torch import nn
import torch.nn.functional as F


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _shapes(model):
    return sorted([list(p.shape) for p in model.parameters()])


def module_summary(ns, cls, kwargs, x):
    """Construct ns.<cls>(**kwargs), run it on x in eval mode; shapes and parameter count."""
    model = getattr(ns, cls)(**kwargs)
    model.eval()
    with torch.no_grad():
        out = model(x)
    return {"out": out, "n_params": _count(model), "shapes": _shapes(model)}


class _Recorder(nn.Module):
    """Linear layer that records the mode and grad state of every forward call."""

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
    """Run ns.train_one_epoch `epochs` times on a recorder model starting in eval mode."""
    model = _Recorder(weight, bias)
    model.eval()
    opt = _CountingSGD(model.parameters(), lr)
    losses = [ns.train_one_epoch(model, batches, opt, F.cross_entropy) for _ in range(epochs)]
    return {"losses": losses, "steps": opt.n_steps, "modes": model.modes,
            "weight": model.lin.weight.detach(), "bias": model.lin.bias.detach()}


def evaluate_model(ns, weight, bias, batches, start_training):
    model = _Recorder(weight, bias)
    model.train(start_training)
    result = ns.evaluate(model, batches, F.cross_entropy)
    return {"result": result, "modes": model.modes, "grad_enabled": model.grad_enabled,
            "mode_after": model.training, "grads": [p.grad is not None for p in model.parameters()]}


def cnn_training_gate(ns, train_x, train_y, test_x, epochs, batch_size, lr):
    """Train the student's CNN with the student's train_one_epoch; return test predictions."""
    torch.manual_seed(0)
    model = ns.CNNClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(train_x), generator=g)
        batches = [(train_x[perm[i:i + batch_size]], train_y[perm[i:i + batch_size]])
                   for i in range(0, len(train_x), batch_size)]
        ns.train_one_epoch(model, batches, opt, F.cross_entropy)
    model.eval()
    with torch.no_grad():
        return torch.cat([model(test_x[i:i + 500]).argmax(dim=-1) for i in range(0, len(test_x), 500)])


def _only(model, kind):
    found = [m for m in model.modules() if isinstance(m, kind)]
    return found


def text_model(ns, cls, kwargs, batches):
    """Outputs of ns.<cls>(**kwargs) in eval mode on several id batches, plus its weights by layer type."""
    torch.manual_seed(0)
    model = getattr(ns, cls)(**kwargs)
    model.eval()
    with torch.no_grad():
        outs = [model(ids) for ids in batches]
    weights = {
        # nn.EmbeddingBag(mode="mean") is an equally valid table for the bag of embeddings
        "embedding": [m.weight.detach() for m in _only(model, (nn.Embedding, nn.EmbeddingBag))],
        "linear": [[m.weight.detach(), m.bias.detach() if m.bias is not None else None] for m in _only(model, nn.Linear)],
        "conv": [[m.weight.detach(), m.bias.detach()] for m in _only(model, nn.Conv1d)],
        "gru": [{k: v.detach() for k, v in m.named_parameters()} for m in _only(model, nn.GRU)],
    }
    return {"outs": outs, "n_params": _count(model), "weights": weights}
