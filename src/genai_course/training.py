"""A tiny supervised training loop with tqdm progress bars, for lectures and demos.

(Homework asks students to write their own loops; this helper is for notebooks where the loop
is not the point.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from .runtime import model_device


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    val_loss: list[float] = field(default_factory=list)  # validation loss per epoch (if evaluated)
    val_metric: list[float] = field(default_factory=list)  # validation metric per epoch (if any)


def fit(model: torch.nn.Module, train_loader: Iterable, optimizer: torch.optim.Optimizer,
        loss_fn: Callable, epochs: int = 1, val_loader: Iterable | None = None,
        metric: Callable | None = None, device: torch.device | str | None = None,
        max_steps: int | None = None, desc: str = "train") -> History:
    """Train ``model`` on ``(x, y)`` batches; evaluate on ``val_loader`` after each epoch.

    ``metric(logits, y) -> float`` is averaged over validation batches (weighted by batch size).
    ``max_steps`` caps the optimiser steps per epoch (handy in quick mode). ``device`` defaults to the
    model's own; batches are moved there.
    """
    hist = History()
    device = device or model_device(model)
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
             metric: Callable | None = None, device: torch.device | str | None = None) -> tuple[float, float | None]:
    """Mean loss (and metric) of ``model`` over ``loader`` in eval mode (batches moved to ``device``,
    default the model's)."""
    device = device or model_device(model)
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


class TensorBatches:
    """Mini-batches ``(x[idx], y[idx])`` of two aligned tensors, kept on ``device`` (moved there once).

    A light stand-in for ``DataLoader(TensorDataset(x, y))``: iterable any number of times, ``len()``
    is the number of batches, the last batch may be smaller, and ``shuffle=True`` draws a new order
    each pass from ``generator`` (default: torch's global generator, so ``seed_everything`` fixes it).
    Slicing whole batches instead of collating single items is much faster, on CPU and GPU alike.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False,
                 device: torch.device | str | None = None, generator: torch.Generator | None = None):
        if len(x) != len(y):
            raise ValueError(f"TensorBatches: x has {len(x)} rows but y has {len(y)}; they must match")
        if batch_size < 1:
            raise ValueError(f"TensorBatches: batch_size must be >= 1, got {batch_size}")
        self.x = x if device is None else x.to(device)
        self.y = y if device is None else y.to(device)
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator).to(self.x.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
            else:
                idx = order[start:start + self.batch_size]
                yield self.x[idx], self.y[idx]


# ---------------------------------------------------------------------------------------------
# Around a loop someone else wrote (a student's train_one_epoch): per-step curves, a per-batch bar.

class StepLog:
    """Per-step training curves and a progress bar that advances per BATCH, around a training loop
    written elsewhere -- e.g. a homework's ``train_one_epoch(model, loader, optimizer, loss_fn)``, which
    sees only a loader and a loss function::

        log = StepLog(F.cross_entropy, validate=lambda: evaluate(model, val, F.cross_entropy),
                      every=50, total=epochs * len(train), desc="CNN")
        for _ in range(epochs):
            train_one_epoch(model, log.batches(train), opt, log.loss)
            log.validate_now()                    # a validation point at every epoch's end too
        log.close()

    ``log.loss`` computes ``loss_fn`` and remembers each batch's loss; ``log.batches(loader)`` yields
    the loader's batches, and after each step (when the loop asks for the next batch) records that
    loss, calls ``validate()`` every ``every`` steps and updates the bar (loss in the postfix).
    ``validate`` returns a dict of numbers, e.g. ``{"loss": ..., "accuracy": ...}``.
    """

    def __init__(self, loss_fn: Callable, validate: Callable[[], dict] | None = None, every: int | None = None,
                 total: int | None = None, desc: str = "training"):
        self.loss_fn, self.validate, self.every, self.total, self.desc = loss_fn, validate, every, total, desc
        self.steps: list[int] = []  # step number (from 1) of each training loss
        self.train_loss: list[float] = []  # loss of the batch of that step
        self.val_steps: list[int] = []  # step numbers of the validation points
        self.val: dict[str, list[float]] = {}  # validation metric -> values at val_steps
        self.step = 0
        self._last: torch.Tensor | None = None
        self._bar = None

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(logits, targets)
        self._last = loss.detach()
        return loss

    def validate_now(self) -> dict:
        """Run ``validate()`` now (once per step at most) and record it; returns its dict."""
        if self.validate is None:
            raise ValueError("StepLog.validate_now: no validate function was given")
        if self.val_steps and self.val_steps[-1] == self.step:
            return {k: v[-1] for k, v in self.val.items()}
        result = self.validate()
        self.val_steps.append(self.step)
        for k, v in result.items():
            self.val.setdefault(k, []).append(float(v))
        return result

    def batches(self, loader: Iterable):
        if self._bar is None:
            self._bar = tqdm(total=self.total if self.total is not None else len(loader), desc=self.desc, unit="batch")
        elif self.total is None:
            self._bar.total += len(loader)
        for batch in loader:
            self._last = None
            yield batch
            self.step += 1  # the loop asked for the next batch: this step is done
            postfix = {}
            if self._last is not None:
                self.steps.append(self.step)
                self.train_loss.append(float(self._last))
                postfix["loss"] = f"{self.train_loss[-1]:.3f}"
            if self.validate is not None and self.every and self.step % self.every == 0:
                postfix.update({f"val {k}": f"{v:.3f}" for k, v in self.validate_now().items()})
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def if_implemented(name: str, factory: Callable[[], torch.nn.Module], example: torch.Tensor | None = None):
    """``factory()``, or None with a printed note when the model is still a stub that raises
    ``NotImplementedError`` (in its constructor, or in ``forward`` on ``example`` when given) -- so a
    notebook cell can skip the one of two alternatives a student chose not to write."""
    try:
        model = factory()
        if example is not None:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):  # dropout here must not shift the seed
                model(example)
    except NotImplementedError:
        print(f"{name}: not implemented (it raises NotImplementedError) -- skipped")
        return None
    return model


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
    """Mean next-token loss over non-overlapping windows of ``ids`` (evenly spread if capped).
    Batches go to the model's device; ``ids`` may stay on the CPU."""
    n = (len(ids) - 1) // context
    if n < 1:
        raise ValueError(f"lm_eval_loss: need at least context+1={context + 1} ids, got {len(ids)}")
    picks = torch.arange(n) if max_windows is None or max_windows >= n else torch.linspace(0, n - 1, max_windows).long()
    was_training = model.training
    model.eval()
    device = model_device(model)
    total = 0.0
    for chunk in picks.split(batch_size):
        x = torch.stack([ids[i * context:(i + 1) * context] for i in chunk.tolist()]).to(device)
        y = torch.stack([ids[i * context + 1:(i + 1) * context + 1] for i in chunk.tolist()]).to(device)
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
    step budget (``max_steps``), whichever ends first; gradient clipping at 1.0; tqdm bar.
    Batches are cut from ``train_ids`` (CPU is fine) and moved to the model's device."""
    import math
    import time

    if minutes is None and max_steps is None:
        raise ValueError("train_lm: give minutes, max_steps or both")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    hist, smooth = LMHistory(), None
    budget = minutes * 60 if minutes is not None else float("inf")
    model.train()
    device = model_device(model)
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
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
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
        bar.set_postfix(step=step, loss=f"{smooth:.3f}", tok_s=f"{hist.tokens / (time.perf_counter() - start):.0f}",
                        refresh=False)  # every batch; the bar redraws at most ~10 times a second
        bar.update(1 if max_steps is not None else int(time.perf_counter() - start) - bar.n)
    bar.close()
    hist.seconds = time.perf_counter() - start
    return hist
