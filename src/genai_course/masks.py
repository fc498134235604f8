"""Inpainting masks for HW2 (``homework/hw2/hw2.ipynb``): which pixels of an image are known.

Every function returns a float tensor of 0s and 1s, **1 = known pixel, 0 = missing**, shaped
``(n, 1, size, size)``, so ``image * mask`` keeps what is known. Random masks take a
``torch.Generator`` so a seed reproduces them.

Kinds (``MASK_KINDS``): ``"center"`` a centred square, ``"boxes"`` a few random rectangles,
``"left"``/``"right"`` the left or right half missing, ``"strokes"`` random thick scribbles.
"""
from __future__ import annotations

import math

import torch

MASK_KINDS = ("center", "boxes", "left", "right", "strokes")


def _check(n: int, size: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"masks: n must be a positive int, got {n!r}")
    if not isinstance(size, int) or size < 4:
        raise ValueError(f"masks: size must be an int >= 4, got {size!r}")


def center_mask(n: int = 1, size: int = 32, box: int = 12) -> torch.Tensor:
    """A centred ``box x box`` square missing (box < size)."""
    _check(n, size)
    if not 0 < box < size:
        raise ValueError(f"center_mask: box must be between 1 and size - 1 = {size - 1}, got {box}")
    m = torch.ones(n, 1, size, size)
    lo = (size - box) // 2
    m[..., lo:lo + box, lo:lo + box] = 0
    return m


def half_mask(n: int = 1, size: int = 32, missing: str = "right") -> torch.Tensor:
    """The ``missing`` (``"left"`` or ``"right"``) half of every column range is unknown."""
    _check(n, size)
    if missing not in ("left", "right"):
        raise ValueError(f"half_mask: missing must be 'left' or 'right', got {missing!r}")
    m = torch.ones(n, 1, size, size)
    if missing == "right":
        m[..., size // 2:] = 0
    else:
        m[..., :size // 2] = 0
    return m


def box_mask(n: int = 1, size: int = 32, boxes: int = 3, min_side: int = 5, max_side: int = 12,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """``boxes`` random rectangles missing per image, sides uniform in ``[min_side, max_side]``."""
    _check(n, size)
    if not 1 <= min_side <= max_side <= size:
        raise ValueError(f"box_mask: need 1 <= min_side <= max_side <= size, got {min_side}, {max_side}, {size}")
    m = torch.ones(n, 1, size, size)
    sides = torch.randint(min_side, max_side + 1, (n, boxes, 2), generator=generator)
    corner = torch.rand(n, boxes, 2, generator=generator)
    for i in range(n):
        for b in range(boxes):
            h, w = sides[i, b].tolist()
            y = int(corner[i, b, 0] * (size - h + 1))
            x = int(corner[i, b, 1] * (size - w + 1))
            m[i, 0, y:y + h, x:x + w] = 0
    return m


def stroke_mask(n: int = 1, size: int = 32, strokes: int = 3, width: float = 2.5, steps: int = 6,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Random thick scribbles missing: each stroke is a random walk of ``steps`` segments, and a pixel
    is missing when its centre lies within ``width / 2`` of a segment."""
    _check(n, size)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    pix = torch.stack([yy, xx], -1).view(1, -1, 2)  # (1, P, 2)
    start = torch.rand(n, strokes, 1, 2, generator=generator) * size
    angle = torch.rand(n, strokes, steps, generator=generator) * 2 * math.pi
    length = (0.15 + 0.2 * torch.rand(n, strokes, steps, generator=generator)) * size
    moves = torch.stack([angle.sin(), angle.cos()], -1) * length[..., None]
    points = torch.cat([start, start + moves.cumsum(2)], 2).clamp(0, size)  # (n, strokes, steps + 1, 2)
    a = points[:, :, :-1].reshape(n, -1, 1, 2)
    b = points[:, :, 1:].reshape(n, -1, 1, 2)
    ab = b - a
    s = ((pix - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-9)
    d = (a + s.clamp(0, 1)[..., None] * ab - pix).norm(dim=-1)  # (n, segments, P)
    hit = (d <= width / 2).any(1)
    return (~hit).float().view(n, 1, size, size)


def make_masks(kind: str, n: int = 1, size: int = 32, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` masks of one kind from ``MASK_KINDS``, or ``"mixed"`` (each image a random kind)."""
    if kind == "center":
        return center_mask(n, size)
    if kind in ("left", "right"):
        return half_mask(n, size, missing=kind)
    if kind == "boxes":
        return box_mask(n, size, generator=generator)
    if kind == "strokes":
        return stroke_mask(n, size, generator=generator)
    if kind == "mixed":
        _check(n, size)
        pick = torch.randint(0, len(MASK_KINDS), (n,), generator=generator)
        out = torch.empty(n, 1, size, size)
        for k, name in enumerate(MASK_KINDS):
            idx = (pick == k).nonzero().flatten()
            if len(idx):
                out[idx] = make_masks(name, len(idx), size, generator)
        return out
    raise ValueError(f"make_masks: kind must be one of {MASK_KINDS + ('mixed',)}, got {kind!r}")


__all__ = ["MASK_KINDS", "center_mask", "half_mask", "box_mask", "stroke_mask", "make_masks"]
