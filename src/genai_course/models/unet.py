"""A small time-conditioned U-Net that predicts the noise in a noisy image, eps_theta(x_t, t).

Given to students in HW2 Part B (``homework/hw2/hw2.ipynb``): they write the diffusion schedule,
training loss and samplers around it; the shipped checkpoint ``data/checkpoints/hw2_unet.safetensors``
was trained by ``benchmarks/hw2_train_unet.py`` on MNIST padded to 32x32 and scaled to [-1, 1].

Design, chosen for speed on two CPU cores: the image is first folded 2x2 into channels
(``pixel_unshuffle``: 1x32x32 -> 4x16x16), so the network works at 16, 8 and 4 pixels; each level
has one residual block (GroupNorm -> SiLU -> 3x3 conv, twice, with the time embedding added in
between); on the way up each level's skip is added to its block's output (``skip="add"``, the default:
no widened convolutions, 1.6x faster on a CPU than concatenating) or concatenated before the block
(``skip="cat"``, the classic U-Net); a last 3x3 conv and
``pixel_shuffle`` unfold the result to the input's shape. The timestep enters as a sinusoidal
embedding (Vaswani et al., 2017; Ho et al., 2020) followed by a two-layer MLP.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps (int or float) -> (B, dim) features [sin(t w_i), cos(t w_i)], w_i = max_period^(-i/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, + time embedding, GroupNorm -> SiLU -> conv3x3, + skip (1x1 conv if
    the channel count changes)."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class TimeUNet(nn.Module):
    """eps_theta(x_t, t): ``forward(x (B, C, H, W) float, t (B,) timesteps) -> (B, C, H, W)``.

    H and W must be multiples of ``patch * 2 ** (len(mults) - 1)`` (32x32 MNIST with the defaults: 8).
    ``t`` may be int64 (the usual 0..T-1 indices) or float; it is embedded as is, not rescaled.

    Args:
        channels: image channels (1 for MNIST).
        base: channels of the first level; level i has ``base * mults[i]``.
        mults: channel multipliers, one per resolution level.
        time_dim: size of the timestep embedding.
        patch: fold ``patch x patch`` pixels into channels first (1 = no folding).
        skip: ``"cat"`` concatenates each level's skip before its up block; ``"add"`` adds it to the up
            block's output (same width), which saves the wider convolutions.
    """

    def __init__(self, channels: int = 1, base: int = 32, mults: tuple[int, ...] = (1, 2, 2), time_dim: int = 128,
                 patch: int = 2, skip: str = "add"):
        super().__init__()
        if skip not in ("cat", "add"):
            raise ValueError(f"TimeUNet: skip must be 'cat' or 'add', got {skip!r}")
        self.config = {"channels": channels, "base": base, "mults": list(mults), "time_dim": time_dim, "patch": patch,
                       "skip": skip}
        self.patch, self.time_dim, self.skip = patch, time_dim, skip
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.inc = nn.Conv2d(channels * patch * patch, base, 3, padding=1)
        widths = [base * m for m in mults]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c = base
        for i, w in enumerate(widths):
            self.down.append(ResBlock(c, w, time_dim))
            c = w
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, time_dim)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(widths))):
            self.up.append(ResBlock(c + widths[i] if skip == "cat" else c, widths[i], time_dim))
            c = widths[i]
            self.upsample.append(nn.Upsample(scale_factor=2, mode="nearest") if i > 0 else nn.Identity())
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, channels * patch * patch, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"TimeUNet: x must be (B, C, H, W), got shape {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"TimeUNet: t must be (B,) = ({x.shape[0]},) timesteps, got shape {tuple(t.shape)}")
        factor = self.patch * 2 ** (len(self.down) - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"TimeUNet: H and W must be multiples of {factor}, got {tuple(x.shape[-2:])} "
                             "(pad MNIST's 28x28 to 32x32)")
        emb = self.time_mlp(timestep_embedding(t, self.time_dim))
        h = F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x
        h = self.inc(h)
        skips = []
        for block, down in zip(self.down, self.downsample):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, emb)
        for block, up in zip(self.up, self.upsample):
            if self.skip == "cat":
                h = up(block(torch.cat([h, skips.pop()], dim=1), emb))
            else:
                h = up(block(h, emb) + skips.pop())
        h = self.out(h)
        return F.pixel_shuffle(h, self.patch) if self.patch > 1 else h


DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "data" / "checkpoints" / "hw2_unet.safetensors"


def load_time_unet(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[TimeUNet, dict]:
    """The shipped noise-prediction U-Net (eval mode) and its metadata (schedule, training figures)."""
    from ..checkpoint import load_checkpoint

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    _, meta = load_checkpoint(path)
    model = TimeUNet(**{k: tuple(v) if k == "mults" else v for k, v in meta.get("config", {}).items()})
    load_checkpoint(path, model)
    return model.to(device).eval(), meta
