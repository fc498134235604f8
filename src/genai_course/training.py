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


# ---------------------------------------------------------------------------------------------
# Language models: random-window batches, a time- or step-budgeted loop, held-out loss.

def lm_batch(ids: torch.Tensor, context: int, batch_size: int, generator: torch.Generator | None = None):
    """Random windows of a 1-D id tensor: inputs (B, T) and next-token targets (B, T)."""
    if len(ids) <= context + 1:
        raise ValueError(f"lm_batch: need more than context+1={context + 1} ids, got {len(ids)}")
    starts = torch.randint(0, len(ids) - context - 1, (batch_size,), generator=generator)
    x = torch.stack([ids[s:s + context] for s in starts.tolist()])
    y = torch.stack([ids[s + 1:s + context + 1] for s in starts.tolist()])
    return x, y


@torch.no_grad()
def lm_eval_loss(model: torch.nn.Module, ids: torch.Tensor, context: int, loss_fn: Callable,
                 max_windows: int | None = None, batch_size: int = 32) -> float:
    """Mean next-token loss over non-overlapping windows of ``ids`` (evenly spread if capped)."""
    n = (len(ids) - 1) // context
    if n < 1:
        raise ValueError(f"lm_eval_loss: need at least context+1={context + 1} ids, got {len(ids)}")
    picks = torch.arange(n) if max_windows is None or max_windows >= n else torch.linspace(0, n - 1, max_windows).long()
    was_training = model.training
    model.eval()
    total = 0.0
    for chunk in picks.split(batch_size):
        x = torch.stack([ids[i * context:(i + 1) * context] for i in chunk.tolist()])
        y = torch.stack([ids[i * context + 1:(i + 1) * context + 1] for i in chunk.tolist()])
        total += loss_fn(model(x), y).item() * len(chunk)
    model.train(was_training)
    return total / len(picks)


@dataclass
class LMHistory:
    steps: list[int] = field(default_factory=list)  # step at each logged point
    train_loss: list[float] = field(default_factory=list)  # smoothed training loss there
    seconds: float = 0.0  # wall time of the loop
    tokens: int = 0  # training tokens seen


def train_lm(model: torch.nn.Module, train_ids: torch.Tensor, loss_fn: Callable, context: int, batch_size: int,
             lr: float, minutes: float | None = None, max_steps: int | None = None, warmup: int = 100,
             weight_decay: float = 0.1, log_every: int = 50, seed: int = 0, desc: str = "training") -> LMHistory:
    """AdamW with linear warm-up and cosine decay to 10 % over a time budget (``minutes``) or a
    step budget (``max_steps``), whichever ends first; gradient clipping at 1.0; tqdm bar."""
    import math
    import time

    if minutes is None and max_steps is None:
        raise ValueError("train_lm: give minutes, max_steps or both")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    hist, smooth = LMHistory(), None
    budget = minutes * 60 if minutes is not None else float("inf")
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=max_steps if max_steps is not None else int(budget), desc=desc,
               unit="step" if max_steps is not None else "s")
    step = 0
    while True:
        elapsed = time.perf_counter() - start
        progress = max(elapsed / budget, step / max_steps if max_steps else 0.0)
        if progress >= 1.0:
            break
        scale = min(1.0, (step + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        x, y = lm_batch(train_ids, context, batch_size, gen)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        hist.tokens += x.numel()
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if step % log_every == 0:
            hist.steps.append(step)
            hist.train_loss.append(smooth)
            bar.set_postfix(loss=f"{smooth:.3f}", tok_s=f"{hist.tokens / (time.perf_counter() - start):.0f}")
        bar.update(1 if max_steps is not None else int(time.perf_counter() - start) - bar.n)
    bar.close()
    hist.seconds = time.perf_counter() - start
    return hist
