"""HW4's captioned-digit dataset: determinism, rendering (quadrant, colour, jitter), captions, the held-out
combinations and the compositional property, and where the digits come from."""
from __future__ import annotations

import re
from itertools import combinations

import pytest
import torch
import torch.nn.functional as F

from genai_course.data import captioned_digits, captions, load_mnist
from genai_course.data.captions import (COLOUR_NAMES, COLOURS, DIGIT_WORDS, HELD_OUT, MNIST_SOURCE, POSITIONS,
                                        TEMPLATES, all_combinations, caption, compose, prompts_for)

RGB = torch.tensor(tuple(COLOURS.values()))
N_TRAIN = 5_000


@pytest.fixture(scope="module")
def splits():
    return {"train": captioned_digits("train", N_TRAIN), "val": captioned_digits("val"),
            "heldout": captioned_digits("heldout")}


def _quadrant_mask(position: torch.Tensor) -> torch.Tensor:
    """(N, 32, 32) True inside each image's quadrant."""
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    row, col = position // 2, position % 2
    return ((ys[None] // 16) == row[:, None, None]) & ((xs[None] // 16) == col[:, None, None])


def _combos(d: dict) -> set[tuple[int, int, int]]:
    return set(zip(d["digit"].tolist(), d["colour"].tolist(), d["position"].tolist()))


def test_constants_and_combination_sets():
    assert DIGIT_WORDS == tuple("0123456789")
    assert COLOUR_NAMES == ("red", "green", "blue", "yellow") and POSITIONS[0] == "top left" and len(POSITIONS) == 4
    assert (RGB >= 0).all() and (RGB <= 1).all()
    dist = torch.cdist(RGB, RGB) + torch.eye(4) * 9
    assert dist.min() > 0.9  # well separated
    assert len(HELD_OUT) == 20 and len(set(HELD_OUT)) == 20
    train, heldout, every = all_combinations("train"), all_combinations("heldout"), all_combinations("all")
    assert len(every) == 160 and len(train) == 140 and len(heldout) == 20
    assert all_combinations("val") == train and set(heldout) == set(HELD_OUT)
    assert not set(train) & set(heldout) and set(train) | set(heldout) == set(every)
    # Two per digit; each colour and each position held out equally often.
    for i, size in enumerate((10, 4, 4)):
        counts = torch.bincount(torch.tensor([t[i] for t in HELD_OUT]), minlength=size)
        assert counts.min() == counts.max()
    with pytest.raises(ValueError):
        all_combinations("test")


def test_held_out_combinations_are_new_only_as_combinations():
    train = all_combinations("train")
    for a, b in combinations(range(3), 2):  # digit x colour, digit x position, colour x position
        seen = {(t[a], t[b]) for t in train}
        sizes = (10, 4, 4)
        assert len(seen) == sizes[a] * sizes[b]
        for h in HELD_OUT:
            assert (h[a], h[b]) in seen


def test_shapes_dtypes_ranges(splits):
    for split, n in (("train", N_TRAIN), ("val", 2_000), ("heldout", 2_000)):
        d = splits[split]
        assert d["images"].shape == (n, 3, 32, 32) and d["images"].dtype == torch.float32
        assert d["images"].min() >= 0 and d["images"].max() <= 1
        for key, size in (("digit", 10), ("colour", 4), ("position", 4)):
            assert d[key].shape == (n,) and d[key].dtype == torch.int64
            assert set(d[key].unique().tolist()) == set(range(size))
        assert len(d["captions"]) == n and all(isinstance(c, str) for c in d["captions"])
    assert captioned_digits("val", 7)["images"].shape == (7, 3, 32, 32)


def test_deterministic():
    a, b = captioned_digits("val", 300, seed=3), captioned_digits("val", 300, seed=3)
    assert a["images"].numpy().tobytes() == b["images"].numpy().tobytes()
    assert a["captions"] == b["captions"] and torch.equal(a["colour"], b["colour"])
    c = captioned_digits("val", 300, seed=4)
    assert not torch.equal(a["images"], c["images"]) and a["captions"] != c["captions"]
    # Splits get different draws for the same seed.
    assert not torch.equal(captioned_digits("train", 300)["mnist_index"], captioned_digits("val", 300)["mnist_index"])


def test_split_combinations(splits):
    held = set(HELD_OUT)
    assert not _combos(splits["train"]) & held and not _combos(splits["val"]) & held
    assert _combos(splits["heldout"]) == held  # 2,000 images cover all 20
    assert _combos(splits["train"]) == set(all_combinations("train"))
    # Compositional property in the actual training images, not only in the list.
    train = splits["train"]
    attrs = torch.stack([train["digit"], train["colour"], train["position"]], 1).tolist()
    for a, b in combinations(range(3), 2):
        seen = {(t[a], t[b]) for t in attrs}
        assert all((h[a], h[b]) in seen for h in HELD_OUT)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_pixels_in_quadrant_with_stated_colour(splits, split):
    d = splits[split]
    x, n = d["images"], len(d["images"])
    lit = x.amax(1) > 0  # (N, 32, 32)
    assert lit.flatten(1).sum(1).min() > 10  # every digit is there
    assert not (lit & ~_quadrant_mask(d["position"])).any()
    # Colour: bright pixels point in the direction of the stated colour, and closer to it than to any other.
    bright = (x.amax(1, keepdim=True) > 0.3).float()
    mean = (x * bright).sum((2, 3)) / bright.sum((2, 3))  # (N, 3)
    cos = F.normalize(mean, dim=1) @ F.normalize(RGB, dim=1).T  # (N, 4)
    assert torch.equal(cos.argmax(1), d["colour"])
    assert (cos[torch.arange(n), d["colour"]] > 0.999).all()
    # The digit is clearly visible: the brightest channel reaches the colour's peak for most images.
    peak = (x.amax((1, 2, 3)) / RGB.amax(1)[d["colour"]])
    assert peak.median() > 0.9


def test_captions_name_their_labels(splits):
    for split, d in splits.items():
        for text, digit, colour, position in zip(d["captions"], d["digit"].tolist(), d["colour"].tolist(),
                                                 d["position"].tolist()):
            assert re.findall(r"\b\d\b", text) == [str(digit)]
            assert [c for c in COLOUR_NAMES if re.search(rf"\b{c}\b", text)] == [COLOUR_NAMES[colour]]
            assert [p for p in POSITIONS if p in text] == [POSITIONS[position]]
        if split != "train":
            assert d["captions"] == prompts_for(zip(d["digit"].tolist(), d["colour"].tolist(), d["position"].tolist()))
    # Training uses every template, about equally often; val and heldout only the canonical one (above).
    d = splits["train"]
    used = [next(t for t in range(len(TEMPLATES)) if caption(*labels, t) == text) for text, *labels in
            zip(d["captions"], d["digit"].tolist(), d["colour"].tolist(), d["position"].tolist())]
    counts = torch.bincount(torch.tensor(used), minlength=len(TEMPLATES))
    assert counts.min() > N_TRAIN / len(TEMPLATES) * 0.8


def test_caption_and_prompts():
    assert caption(3, 0, 0) == "a red 3 in the top left"
    assert caption(3, "red", "top left") == caption(3, 0, 0)
    assert caption(7, "blue", "bottom right", 1) == "a 7 in blue at the bottom right"
    assert caption(0, "yellow", "top right", 2) == "yellow digit 0, top right"
    assert len({caption(5, 1, 2, t) for t in range(len(TEMPLATES))}) == len(TEMPLATES)
    assert prompts_for(all_combinations("heldout"))[0] == caption(*sorted(HELD_OUT)[0])
    with pytest.raises(ValueError):
        caption(3, "purple", 0)
    with pytest.raises(ValueError):
        caption(3, 0, 4)


def test_compose_jitter_is_at_most_two_pixels():
    # A 6x6 square in the middle of a 28x28 frame: after downscaling it never touches the patch's edges,
    # so it may move up to 2 px either way; its lit bounding box shows the shift.
    n = 2_000
    digits = torch.zeros(n, 28, 28)
    digits[:, 11:17, 11:17] = 1.0
    gen = torch.Generator().manual_seed(0)
    positions = torch.arange(n) % 4
    out = compose(digits, torch.zeros(n), torch.arange(n) % 4, positions, gen)
    assert out.shape == (n, 3, 32, 32)
    lit = out.amax(1) > 0
    first_row = lit.any(2).int().argmax(1) - (positions // 2) * 16
    first_col = lit.any(1).int().argmax(1) - (positions % 2) * 16
    # The unjittered place: shifts are symmetric, so the middle of the observed range.
    for offset in (first_row, first_col):
        centre = (offset.min() + offset.max()) // 2
        assert set((offset - centre).tolist()) == {-2, -1, 0, 1, 2}
    # Same generator state, same canvases.
    again = compose(digits, torch.zeros(n), torch.arange(n) % 4, positions, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_compose_never_crops_a_digit():
    x, _ = load_mnist("val")
    x = x[:1000]
    out = compose(x, torch.zeros(1000), torch.zeros(1000, dtype=torch.long), torch.full((1000,), 3),
                  torch.Generator().manual_seed(1))
    patch = F.interpolate(x, size=(16, 16), mode="bilinear", antialias=True).clamp(0, 1)
    assert torch.allclose(out[:, 0].sum((1, 2)), patch.sum((1, 2, 3)) * RGB[0, 0], rtol=1e-5)


def _key(img: torch.Tensor) -> bytes:
    return (img * 256).round().to(torch.uint8).numpy().tobytes()


def test_val_and_heldout_digits_come_from_other_mnist_images(splits):
    assert MNIST_SOURCE == {"train": "train", "val": "val", "heldout": "test"}
    train_keys = {_key(img) for img in load_mnist("train")[0]}
    for split in ("val", "heldout"):
        d = splits[split]
        source, labels = load_mnist(MNIST_SOURCE[split])
        idx = d["mnist_index"]
        assert torch.equal(labels[idx], d["digit"])
        assert not any(_key(img) in train_keys for img in source[idx])
        # The picture really is that source digit: its grey canvas, cut to the quadrant, is the downscaled
        # source digit shifted by at most 2 px.
        sub = slice(0, 100)
        grey = d["images"][sub].amax(1) / RGB.amax(1)[d["colour"][sub], None, None]
        patch = F.pad(F.interpolate(source[idx[sub]], size=(16, 16), mode="bilinear", antialias=True)
                      .clamp(0, 1)[:, 0], (2, 2, 2, 2))
        for i in range(100):
            row, col = divmod(int(d["position"][i]), 2)
            quad = grey[i, row * 16:row * 16 + 16, col * 16:col * 16 + 16]
            assert any(torch.allclose(quad, patch[i, 2 - dy:18 - dy, 2 - dx:18 - dx], atol=1e-5)
                       for dy in range(-2, 3) for dx in range(-2, 3))
    assert torch.equal(captions.captioned_digits("train", 100)["digit"],
                       load_mnist("train")[1][captions.captioned_digits("train", 100)["mnist_index"]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        captioned_digits("test")
    with pytest.raises(ValueError):
        captioned_digits("val", 0)
