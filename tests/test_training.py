from __future__ import annotations

import torch
from torch import nn

import genai_course as gc
from genai_course.training import evaluate, fit


def test_fit_learns_a_separable_problem():
    g = gc.seed_everything(0)
    x = torch.randn(256, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Linear(2, 2)
    acc = lambda logits, t: (logits.argmax(-1) == t).float().mean().item()  # noqa: E731
    hist = fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), nn.functional.cross_entropy,
               epochs=5, val_loader=loader, metric=acc)
    assert len(hist.train_loss) == len(hist.val_loss) == len(hist.val_metric) == 5
    assert hist.train_loss[-1] < hist.train_loss[0] * 0.6
    assert hist.val_metric[-1] > 0.95
    assert model.training, "fit leaves the model in train mode"
    model.eval()
    evaluate(model, loader, nn.functional.cross_entropy)
    assert not model.training, "evaluate restores the mode it found"


def test_fit_max_steps_caps_optimizer_steps():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = []
    opt.register_step_post_hook(lambda *a: steps.append(1))
    data = [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))] * 10
    fit(model, data, opt, nn.functional.cross_entropy, epochs=2, max_steps=3)
    assert len(steps) == 6
