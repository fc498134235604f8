"""HW0 probes: scenarios that run INSIDE the sandbox against the student's module ``ns``.

They build the student's objects from inputs the grader sends, run them, and return raw results
(tensors, numbers, flags). They hold no expected values: every comparison happens in the grader.
"""
import torch
from torch import nn
import torch.nn.functional as F

from genai_course.grading.weights import load_reference


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _shapes(model):
    return sorted([list(p.shape) for p in model.parameters()])


def module_outputs(ns, cls, kwargs, state, x):
    """ns.<cls>(**kwargs) with the reference's weights loaded, run on x in eval mode."""
    if _absent(ns, cls):
        return {"absent": _absent(ns, cls)}
    model = getattr(ns, cls)(**kwargs)
    missing, extra = load_reference(model, state)
    model.eval()
    with torch.no_grad():
        return {"out": model(x), "missing": missing, "extra": extra}


def text_model_loaded(ns, cls, kwargs, state, ids):
    """ns.<cls>(**kwargs) with the reference's weights loaded, in eval mode, on one id batch."""
    return module_outputs(ns, cls, kwargs, state, ids)


def module_summary(ns, cls, kwargs, x):
    """Construct ns.<cls>(**kwargs), run it on x in eval mode; shapes and parameter count."""
    if _absent(ns, cls):
        return {"absent": _absent(ns, cls)}
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


class _DeepLinear(nn.Module):
    """Linear + Dropout(0.5) whose forward also runs a chain of large activations that do not change
    the output: when autograd records, the chain stays alive (~190 MB); under no_grad each link is
    freed at once (~20 MB peak). The grader runs evaluate under a memory budget set from outside."""

    def __init__(self, weight, bias, width=20000, depth=12):
        super().__init__()
        self.lin = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(weight)
            self.lin.bias.copy_(bias)
        self.scale = nn.Parameter(torch.ones(()))
        self.drop = nn.Dropout(0.5)
        self.width, self.depth = width, depth

    def forward(self, x):
        h = x.unsqueeze(-1).expand(*x.shape, self.width)
        for _ in range(self.depth):
            h = torch.tanh(h * self.scale)
        return self.lin(self.drop(x + 0.0 * h.mean(-1)))


def evaluate_model(ns, weight, bias, batches, start_training, probe_x):
    """ns.evaluate on a Linear+Dropout model handed over in train or eval mode; then the model's
    output on probe_x (dropout shows whether evaluate put it back in train mode)."""
    model = _DeepLinear(weight, bias)
    model.train(start_training)
    result = ns.evaluate(model, batches, F.cross_entropy)
    torch.manual_seed(0)
    with torch.no_grad():
        after = model.lin(model.drop(probe_x))
    return {"result": result, "after": after}


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


def _absent(ns, cls):
    """Why ns.<cls> cannot be built as a module, or None. Probes report it instead of raising: an error
    raised by a probe's own line counts as a grader problem, not as the student's."""
    if not isinstance(getattr(ns, cls, None), type) or not issubclass(getattr(ns, cls), nn.Module):
        return f"{cls} is not defined as an nn.Module subclass"
    return None


def text_model(ns, cls, kwargs, batches):
    """Outputs of ns.<cls>(**kwargs) in eval mode on several id batches, plus its weights by layer type."""
    if _absent(ns, cls):
        return {"absent": _absent(ns, cls)}
    torch.manual_seed(0)
    model = getattr(ns, cls)(**kwargs)
    model.eval()
    with torch.no_grad():
        outs = [model(ids) for ids in batches]
    weights = {
        # nn.EmbeddingBag(mode="mean") is an equally valid table for the bag of embeddings
        "embedding": [m.weight.detach() for m in _only(model, (nn.Embedding, nn.EmbeddingBag))],
        "linear": [[m.weight.detach(), m.bias.detach() if m.bias is not None else None] for m in _only(model, nn.Linear)],
        "conv": [[m.weight.detach(), m.bias.detach() if m.bias is not None else None] for m in _only(model, nn.Conv1d)],
        "gru": [{k: v.detach() for k, v in m.named_parameters()} for m in _only(model, nn.GRU)],
    }
    return {"outs": outs, "n_params": _count(model), "weights": weights}
