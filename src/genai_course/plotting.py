"""Plots the notebooks share: image grids, loss curves and attention-mask pictures (matplotlib).

Every function returns the ``Figure`` and saves it when ``path`` is given, so it works the same in
a notebook and in a headless script.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt  # falls back to the Agg backend when there is no display
import numpy as np
import torch


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def image_grid(images: torch.Tensor | np.ndarray, titles: Sequence[str] | None = None,
               ncols: int = 8, cmap: str = "gray", scale: float = 1.2, path=None):
    """Show ``images`` shaped ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, 3, H, W)`` in a grid."""
    x = torch.as_tensor(images).detach().cpu().float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image_grid: expected (N, H, W) or (N, C, H, W) with C in 1 or 3, got {tuple(x.shape)}")
    n = x.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + (0.3 * nrows if titles else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = x[i].permute(1, 2, 0).numpy()
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img.clip(0, 1), cmap=cmap)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    return _finish(fig, path)


def image_rows(rows: Mapping[str, torch.Tensor], vmin: float = -1.0, vmax: float = 1.0, scale: float = 1.0,
               title: str | None = None, path=None):
    """Named rows of grey-scale images side by side, e.g. ``{"masked": ..., "GAN": ..., "diffusion": ...}``:
    each value is ``(N, 1, H, W)`` or ``(N, H, W)``; all share one grey range ``[vmin, vmax]`` (default
    [-1, 1], the range HW2's networks work in), so rows can be compared pixel for pixel."""
    rows = {k: torch.as_tensor(v).detach().cpu().float() for k, v in rows.items()}
    for k, v in rows.items():
        if v.ndim == 4 and v.shape[1] == 1:
            rows[k] = v[:, 0]
        elif v.ndim != 3:
            raise ValueError(f"image_rows: row {k!r} must be (N, 1, H, W) or (N, H, W), got {tuple(v.shape)}")
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(scale * ncols + 1.2, scale * len(rows)), squeeze=False)
    for r, (name, imgs) in enumerate(rows.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(imgs):
                ax.imshow(imgs[c].numpy(), cmap="gray", vmin=vmin, vmax=vmax)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def loss_curves(curves: Mapping[str, Sequence[float]], xlabel: str = "epoch", ylabel: str = "loss",
                title: str | None = None, logy: bool = False, path=None):
    """Plot named curves, e.g. ``{"train": [...], "val": [...]}``, on one axis."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, ys in curves.items():
        ys = list(ys)
        ax.plot(range(1, len(ys) + 1), ys, marker="o" if len(ys) < 30 else None, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, path)


def _smooth(ys: Sequence[float], half_width: int) -> list[float]:
    """Centred moving average (no lag: a smoothed training curve stays comparable with validation points)."""
    ys = list(ys)
    return [sum(ys[max(0, i - half_width):i + half_width + 1]) / len(ys[max(0, i - half_width):i + half_width + 1])
            for i in range(len(ys))]


def step_curves(runs: Mapping[str, object], title: str | None = None, note: str | None = None, path=None):
    """Per-step curves of named runs (``training.StepLog``, or anything with ``steps``, ``train_loss``,
    ``val_steps`` and ``val``): the training loss of every step (faint) and smoothed, the validation loss
    as markers on the same axis, and every other validation metric on an axis of its own, with markers.
    ``note`` is printed under the title (e.g. that these are quick-mode numbers)."""
    metrics = [k for k in dict.fromkeys(k for r in runs.values() for k in r.val) if k != "loss"]
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 3.4), squeeze=False)
    loss_ax = axes[0, 0]
    for i, (name, r) in enumerate(runs.items()):
        color = f"C{i}"
        if r.train_loss:
            loss_ax.plot(r.steps, r.train_loss, color=color, alpha=0.25, lw=0.8)
            loss_ax.plot(r.steps, _smooth(r.train_loss, max(1, len(r.train_loss) // 40)), color=color, lw=1.5, label=f"{name} train")
        if "loss" in r.val:
            loss_ax.plot(r.val_steps, r.val["loss"], "o--", color=color, ms=4, label=f"{name} validation")
        for ax, m in zip(axes[0, 1:], metrics):
            if m in r.val:
                ax.plot(r.val_steps, r.val[m], "o-", color=color, ms=4, label=name)
    loss_ax.set(xlabel="training step", ylabel="loss", title="loss (faint: every step; line: its moving average)")
    for ax, m in zip(axes[0, 1:], metrics):
        ax.set(xlabel="training step", ylabel=f"validation {m}", title=f"validation {m}")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title or note:
        fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=10)
    return _finish(fig, path)


def attention_mask(mask: torch.Tensor | np.ndarray, title: str = "attention mask",
                   weights: torch.Tensor | np.ndarray | None = None, path=None):
    """Picture a boolean ``(T, T)`` mask (query rows, key columns); with ``weights`` also show
    attention weights of the same shape beside it."""
    m = torch.as_tensor(mask).detach().cpu()
    if m.ndim != 2:
        raise ValueError(f"attention_mask: expected a (T, T) mask, got shape {tuple(m.shape)}")
    panels = [(m.float().numpy(), title, "Greys")]
    if weights is not None:
        panels.append((torch.as_tensor(weights).detach().cpu().float().numpy(), "attention weights", "viridis"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (arr, name, cmap) in zip(axes.flat, panels):
        im = ax.imshow(arr, cmap=cmap, interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
        fig.colorbar(im, ax=ax, fraction=0.046)
    return _finish(fig, path)
