"""A tiny supervised training loop with tqdm progress bars, for lectures and demos.

(Homework asks students to write their own loops; this helper is for notebooks where the loop
is not the point.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    val_loss: list[float] = field(default_factory=list)  # validation loss per epoch (if evaluated)
    val_metric: list[float] = field(default_factory=list)  # validation metric per epoch (if any)


def fit(model: torch.nn.Module, train_loader: Iterable, optimizer: torch.optim.Optimizer,
        loss_fn: Callable, epochs: int = 1, val_loader: Iterable | None = None,
        metric: Callable | None = None, device: torch.device | str = "cpu",
        max_steps: int | None = None, desc: str = "train") -> History:
    """Train ``model`` on ``(x, y)`` batches; evaluate on ``val_loader`` after each epoch.

    ``metric(logits, y) -> float`` is averaged over validation batches (weighted by batch size).
    ``max_steps`` caps the optimiser steps per epoch (handy in quick mode).
    """
    hist = History()
    model.to(device)
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        bar = tqdm(train_loader, desc=f"{desc} epoch {epoch + 1}/{epochs}", leave=False)
        for step, (x, y) in enumerate(bar):
            if max_steps is not None and step >= max_steps:
                break
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            count += len(y)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        hist.train_loss.append(total / max(count, 1))
        if val_loader is not None:
            vl, vm = evaluate(model, val_loader, loss_fn, metric, device)
            hist.val_loss.append(vl)
            if vm is not None:
                hist.val_metric.append(vm)
    return hist


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable, loss_fn: Callable,
             metric: Callable | None = None, device: torch.device | str = "cpu") -> tuple[float, float | None]:
    """Mean loss (and metric) of ``model`` over ``loader`` in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, metric_sum, n = 0.0, 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += loss_fn(logits, y).item() * len(y)
        if metric is not None:
            metric_sum += float(metric(logits, y)) * len(y)
        n += len(y)
    model.train(was_training)
    return loss_sum / max(n, 1), (metric_sum / max(n, 1) if metric is not None else None)
