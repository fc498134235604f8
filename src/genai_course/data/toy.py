"""Small synthetic 2-D data sets for the lectures, made on the fly (nothing to download)."""
from __future__ import annotations

import math

import torch


def two_moons(n: int, noise: float = 0.15, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles in the plane, the classic "two moons" (defined in Lecture 1,
    ``lectures/01-generative-models-and-autodiff.ipynb``; also used by Lecture 9, normalizing flows).

    Label 0 is the upper half circle of radius 1 around (0, 0); label 1 the lower one around (1, 0.5),
    so the two interleave. Each label with probability 1/2, the angle uniform along the moon, then
    isotropic Gaussian noise of standard deviation ``noise``.

    Returns:
        points: float32 ``(n, 2)``;  labels: int64 ``(n,)`` in {0, 1}.
    """
    if n < 0 or noise < 0:
        raise ValueError(f"two_moons: need n >= 0 and noise >= 0, got n={n}, noise={noise}")
    y = (torch.rand(n, generator=generator) < 0.5).long()               # (n,)
    t = torch.rand(n, generator=generator) * math.pi                    # angle along the moon
    upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)            # (n, 2)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)  # (n, 2)
    x = torch.where(y[:, None] == 1, lower, upper)
    return x + noise * torch.randn(n, 2, generator=generator), y


__all__ = ["two_moons"]
