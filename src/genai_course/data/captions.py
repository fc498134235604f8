"""Captioned images of coloured digits, made by the project (HW4: text-to-image, ``solutions/hw4/hw4.ipynb``).

Each image is a black 32x32 RGB canvas with one MNIST digit on it: the 28x28 digit is downscaled to
16x16, tinted with one of four colours (pixel = grey intensity x colour) and placed in one of the four
16x16 quadrants, shifted by a random jitter of at most 2 pixels in each direction that keeps the whole
digit inside its quadrant (nothing is cropped, nothing spills into another quadrant). Its caption names the three attributes, e.g.
``"a red 3 in the top left"``. Attributes are stored as integer indices:

* ``digit`` 0..9 (the MNIST label; captions write it as a numeral, ``DIGIT_WORDS``),
* ``colour`` 0..3 into ``COLOUR_NAMES`` / ``COLOURS`` (red, green, blue, yellow),
* ``position`` 0..3 into ``POSITIONS`` (top left, top right, bottom left, bottom right).

That makes 10 x 4 x 4 = 160 combinations. The 20 in ``HELD_OUT`` (two per digit) never occur in
training: each is new only *as a combination* -- every digit x colour, digit x position and colour x
position pair still appears in training -- so the ``heldout`` split measures compositional
generalisation. ``captioned_digits(split, n, seed)`` builds the splits deterministically, in memory:

* ``"train"`` (default 50,000, one canvas per MNIST training digit): MNIST ``train`` digits, the 140
  training combinations, captions drawn at random from ``TEMPLATES``;
* ``"val"`` (default 2,000): MNIST ``val`` digits, the same 140 combinations, canonical caption
  (template 0);
* ``"heldout"`` (default 2,000): MNIST ``test`` digits, only the 20 held-out combinations, canonical
  caption.

So val and heldout never show a digit image that training shows. For each canvas the digit image is
drawn first (a random permutation of the MNIST split, repeated if ``n`` exceeds it), then one of the
combinations allowed for that digit's label, uniformly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .mnist import load_mnist

DIGIT_WORDS: tuple[str, ...] = tuple(str(d) for d in range(10))
# Far apart in RGB (pairwise distance >= 0.9) and each bright enough to see on black.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.1, 0.1),
    "green": (0.1, 0.9, 0.1),
    "blue": (0.2, 0.4, 1.0),
    "yellow": (1.0, 1.0, 0.0),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
POSITIONS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")
TEMPLATES: tuple[str, ...] = (
    "a {colour} {digit} in the {position}",  # canonical: evaluation prompts, val and heldout captions
    "a {digit} in {colour} at the {position}",
    "{colour} digit {digit}, {position}",
    "the {position} shows a {colour} {digit}",
)
CANVAS, PATCH, MAX_JITTER = 32, 16, 2
SPLITS = ("train", "val", "heldout")
MNIST_SOURCE = {"train": "train", "val": "val", "heldout": "test"}  # which MNIST split each draws digits from
DEFAULT_SIZES = {"train": 50_000, "val": 2_000, "heldout": 2_000}
_SPLIT_OFFSET = {"train": 1, "val": 2, "heldout": 3}


def _held_out() -> tuple[tuple[int, int, int], ...]:
    # i = 2 * digit + k (k = 0, 1): colour i % 4 and position (i + i // 4) % 4. Each colour and each
    # position is held out 5 times, the two combinations of a digit differ in colour and in position,
    # and no colour x position pair is held out more than twice (out of its 10 digits).
    return tuple((i // 2, i % 4, (i + i // 4) % 4) for i in range(20))


HELD_OUT: tuple[tuple[int, int, int], ...] = _held_out()


def all_combinations(split: str = "all") -> list[tuple[int, int, int]]:
    """The ``(digit, colour, position)`` index triples of a split, sorted: ``"train"`` and ``"val"`` the
    140 not held out, ``"heldout"`` the 20 of ``HELD_OUT``, ``"all"`` all 160."""
    every = [(d, c, p) for d in range(10) for c in range(len(COLOURS)) for p in range(len(POSITIONS))]
    held = set(HELD_OUT)
    if split == "all":
        return every
    if split in ("train", "val"):
        return [t for t in every if t not in held]
    if split == "heldout":
        return sorted(held)
    raise ValueError(f"all_combinations: split must be one of {SPLITS + ('all',)}, got {split!r}")


def _index(value: int | str, names: tuple[str, ...], what: str) -> int:
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; expected one of {names}")
        return names.index(value)
    value = int(value)
    if not 0 <= value < len(names):
        raise ValueError(f"{what} index {value} out of range 0..{len(names) - 1}")
    return value


def caption(digit: int, colour: int | str, position: int | str, template: int = 0) -> str:
    """The caption of one combination; ``colour``/``position`` are indices or names. Template 0
    (``"a red 3 in the top left"``) is the canonical one used for evaluation prompts."""
    return TEMPLATES[template].format(digit=DIGIT_WORDS[_index(digit, DIGIT_WORDS, "digit")],
                                      colour=COLOUR_NAMES[_index(colour, COLOUR_NAMES, "colour")],
                                      position=POSITIONS[_index(position, POSITIONS, "position")])


def prompts_for(combinations, template: int = 0) -> list[str]:
    """Captions (canonical by default) of ``(digit, colour, position)`` triples, e.g. the prompts to
    generate for ``all_combinations("heldout")``."""
    return [caption(d, c, p, template) for d, c, p in combinations]


def compose(digits_28x28: torch.Tensor, digit_labels: torch.Tensor, colours: torch.Tensor,
            positions: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Render a batch of canvases, vectorised.

    Args:
        digits_28x28: ``(B, 28, 28)`` or ``(B, 1, 28, 28)`` grey digits, float in [0, 1] or uint8.
        digit_labels: ``(B,)`` labels of those digits (only checked for shape: the picture is the digit).
        colours: ``(B,)`` indices into ``COLOUR_NAMES``; positions: ``(B,)`` indices into ``POSITIONS``.
        generator: draws the jitter, integers in ``[-2, 2]`` for y and x (two uniform draws per image).
    Returns:
        float32 ``(B, 3, 32, 32)`` in [0, 1]: black except the tinted digit inside its quadrant.
    """
    x = digits_28x28
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    b = x.shape[0]
    if x.shape[1:] != (1, 28, 28):
        raise ValueError(f"compose: digits must be (B, 28, 28) or (B, 1, 28, 28), got {tuple(digits_28x28.shape)}")
    colours, positions = torch.as_tensor(colours).long(), torch.as_tensor(positions).long()
    if not (len(digit_labels) == colours.shape[0] == positions.shape[0] == b):
        raise ValueError("compose: digits, labels, colours and positions must have the same length")
    patch = F.interpolate(x.float(), size=(PATCH, PATCH), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(0.0, 1.0)[:, 0]  # (B, 16, 16)
    # Jitter: a shift (dy, dx) of at most 2 pixels, uniform over the shifts that keep every non-zero
    # pixel of the digit inside its quadrant (a digit touching an edge of its 16x16 patch is not moved
    # towards that edge). The patch is seen through a 16x16 window of itself padded by 2 zeros.
    m = MAX_JITTER
    margins = []  # (B,) free rows above, below, free columns left, right (first non-zero row/column)
    for profile in (patch.amax(2) > 0, patch.amax(1) > 0):
        margins += [profile.int().argmax(1), profile.flip(1).int().argmax(1)]
    lo = -torch.stack(margins[0::2], 1).clamp(max=m)  # (B, 2): most negative dy, dx allowed
    hi = torch.stack(margins[1::2], 1).clamp(max=m)
    u = torch.rand(b, 2, generator=generator)
    shift = torch.minimum(lo + (u * (hi - lo + 1)).long(), hi)  # (B, 2) integers in [lo, hi]
    padded = F.pad(patch, (m, m, m, m))  # (B, 20, 20)
    ar = torch.arange(PATCH)
    rows = (ar[None, :] + m - shift[:, :1]).unsqueeze(-1).expand(b, PATCH, PATCH + 2 * m)
    window = padded.gather(1, rows)  # (B, 16, 20)
    cols = (ar[None, :] + m - shift[:, 1:]).unsqueeze(1).expand(b, PATCH, PATCH)
    window = window.gather(2, cols)  # (B, 16, 16)
    # Place in the quadrant: the canvas as (B, 2 rows of quadrants, 2 columns, 16, 16).
    quads = torch.zeros(b, 2, 2, PATCH, PATCH)
    quads[torch.arange(b), positions // 2, positions % 2] = window
    canvas = quads.permute(0, 1, 3, 2, 4).reshape(b, CANVAS, CANVAS)
    rgb = torch.tensor(tuple(COLOURS.values()), dtype=torch.float32)[colours]  # (B, 3)
    return canvas[:, None] * rgb[:, :, None, None]


def _draw_indices(size: int, n: int, gen: torch.Generator) -> torch.Tensor:
    perms = [torch.randperm(size, generator=gen) for _ in range(-(-n // size))]
    return torch.cat(perms)[:n]


def captioned_digits(split: str = "train", n: int | None = None, seed: int = 0) -> dict:
    """One split of the captioned-digit dataset (see the module docstring), deterministic for a given
    ``(split, n, seed)``.

    Returns a dict with ``images`` float32 ``(N, 3, 32, 32)`` in [0, 1]; ``digit``, ``colour``,
    ``position`` int64 ``(N,)``; ``captions`` list of N str; ``mnist_index`` int64 ``(N,)``, the row of
    each digit in MNIST split ``MNIST_SOURCE[split]``.
    """
    if split not in SPLITS:
        raise ValueError(f"captioned_digits: split must be one of {SPLITS}, got {split!r}")
    n = DEFAULT_SIZES[split] if n is None else int(n)
    if n < 1:
        raise ValueError(f"captioned_digits: n must be positive, got {n}")
    gen = torch.Generator().manual_seed(int(seed) * 16 + _SPLIT_OFFSET[split])
    images, labels = load_mnist(MNIST_SOURCE[split])
    idx = _draw_indices(len(labels), n, gen)
    digit = labels[idx]
    # The allowed (colour, position) pairs of each digit: 14 per digit for train/val, 2 for heldout.
    table = torch.tensor([[[c, p] for d2, c, p in all_combinations(split) if d2 == d] for d in range(10)])
    choice = torch.randint(0, table.shape[1], (n,), generator=gen)
    colour, position = table[digit, choice, 0], table[digit, choice, 1]
    if split == "train":
        templates = torch.randint(0, len(TEMPLATES), (n,), generator=gen).tolist()
    else:
        templates = [0] * n
    out = compose(images[idx], digit, colour, position, gen)
    captions = [TEMPLATES[t].format(digit=DIGIT_WORDS[d], colour=COLOUR_NAMES[c], position=POSITIONS[p])
                for t, d, c, p in zip(templates, digit.tolist(), colour.tolist(), position.tolist())]
    return {"images": out, "digit": digit, "colour": colour, "position": position, "captions": captions,
            "mnist_index": idx}


__all__ = ["captioned_digits", "caption", "prompts_for", "all_combinations", "compose", "DIGIT_WORDS", "COLOURS",
           "COLOUR_NAMES", "POSITIONS", "TEMPLATES", "HELD_OUT", "SPLITS", "MNIST_SOURCE"]
