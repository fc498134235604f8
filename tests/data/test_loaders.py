"""Loaders return what their docstrings promise: shapes, dtypes, ranges and fixed splits."""
from __future__ import annotations

import pytest
import torch

from genai_course.data import load_mnist, load_sentiment, load_shakespeare, shakespeare_splits


@pytest.mark.parametrize("split,n", [("train", 50_000), ("val", 10_000), ("test", 10_000)])
def test_mnist_splits(split, n):
    x, y = load_mnist(split)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() < 1.0
    assert set(y.unique().tolist()) == set(range(10))
    # Every class is reasonably represented (MNIST is near-balanced).
    assert torch.bincount(y, minlength=10).min() > n * 0.08


def test_mnist_splits_are_disjoint():
    a, _ = load_mnist("val")
    b, _ = load_mnist("test")
    assert not torch.equal(a[:100], b[:100])


def test_mnist_bad_split():
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("validation")


def test_shakespeare_text_and_split():
    text = load_shakespeare()
    assert 4_900_000 < len(text) < 5_200_000
    assert len(set(text)) == 84 and text.isascii()
    assert "To be, or not to be" in text
    train, val = shakespeare_splits()
    assert train + val == text
    assert len(val) == len(text) - int(len(text) * 0.9)
    with pytest.raises(ValueError):
        shakespeare_splits(1.5)


def test_sentiment_splits():
    sizes = {}
    for split in ("train", "val", "test"):
        texts, labels = load_sentiment(split)
        assert len(texts) == len(labels) and labels.dtype == torch.int64
        assert set(labels.unique().tolist()) == {0, 1}
        assert all(isinstance(t, str) and t.strip() == t and t for t in texts)
        sizes[split] = len(texts)
    total = sum(sizes.values())
    assert 12_000 < total < 13_500
    assert abs(sizes["train"] / total - 0.8) < 0.01 and abs(sizes["test"] / total - 0.1) < 0.01
    with pytest.raises(ValueError, match="split must be one of"):
        load_sentiment("dev")
