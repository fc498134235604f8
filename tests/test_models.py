"""What HW2 is given: masks, the noise-prediction U-Net, the digit classifier with its shipped
checkpoint, the Frechet distance, the padded MNIST loader and the image-rows plot."""
from __future__ import annotations

import math

import pytest
import torch

import genai_course as gc
from genai_course import masks, metrics, models, plotting


@pytest.mark.parametrize("kind", masks.MASK_KINDS + ("mixed",))
def test_every_mask_kind_is_binary_shaped_and_reproducible(kind):
    a = masks.make_masks(kind, 6, generator=torch.Generator().manual_seed(0))
    b = masks.make_masks(kind, 6, generator=torch.Generator().manual_seed(0))
    assert a.shape == (6, 1, 32, 32) and a.dtype == torch.float32
    assert set(a.unique().tolist()) <= {0.0, 1.0} and torch.equal(a, b)
    assert 0 < a.mean() < 1, "some pixels known, some missing"


def test_fixed_masks_hide_exactly_what_they_say():
    c = masks.center_mask(2, 32, box=12)
    assert (c == 0).sum().item() == 2 * 144 and c[0, 0, 10:22, 10:22].sum() == 0 and c[0, 0, :10].all()
    right = masks.half_mask(1, 32, "right")
    assert right[..., :16].all() and not right[..., 16:].any()
    assert torch.equal(masks.half_mask(1, 32, "left"), right.flip(-1))


def test_random_masks_differ_by_seed_and_mixed_mixes_kinds():
    for kind in ("boxes", "strokes"):
        a = masks.make_masks(kind, 4, generator=torch.Generator().manual_seed(1))
        b = masks.make_masks(kind, 4, generator=torch.Generator().manual_seed(2))
        assert not torch.equal(a, b) and not torch.equal(a[0], a[1])
    mixed = masks.make_masks("mixed", 40, generator=torch.Generator().manual_seed(0))
    assert len({round(m.mean().item(), 3) for m in mixed}) > 5


def test_masks_reject_bad_arguments_by_name():
    with pytest.raises(ValueError, match="kind must be one of"):
        masks.make_masks("circle", 2)
    with pytest.raises(ValueError, match="n must be a positive int"):
        masks.center_mask(0)
    with pytest.raises(ValueError, match="box must be between"):
        masks.center_mask(1, 32, box=32)
    with pytest.raises(ValueError, match="missing must be 'left' or 'right'"):
        masks.half_mask(1, 32, "top")


def test_time_unet_shapes_timesteps_and_errors():
    torch.manual_seed(0)
    net = models.TimeUNet(base=16).eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        out = net(x, torch.tensor([5, 5, 5]))
        assert out.shape == x.shape
        assert torch.allclose(net(x, 5), out) and torch.allclose(net(x, torch.tensor(5)), out), "an int t is broadcast"
        assert not torch.allclose(net(x, torch.tensor([50, 50, 50])), out), "the output depends on t"
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.randn(1, 1, 28, 28), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"t must be \(B,\)"):
        net(x, torch.tensor([1, 2]))
    loss = net(x, torch.tensor([1, 2, 3])).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_time_unet_skip_kinds():
    torch.manual_seed(0)
    cat, add = models.TimeUNet(base=16, skip="cat").eval(), models.TimeUNet(base=16, skip="add").eval()
    assert sum(p.numel() for p in add.parameters()) < sum(p.numel() for p in cat.parameters())
    assert add.config["skip"] == "add" and cat.config["skip"] == "cat"
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = add(x, torch.tensor([3, 3]))
        assert out.shape == x.shape
        # the skips matter: zeroing the top level's block output changes the prediction
        add.down[0].conv2.weight.data.zero_()
        add.down[0].conv2.bias.data.zero_()
        assert not torch.allclose(add(x, torch.tensor([3, 3])), out)
    with pytest.raises(ValueError, match="skip must be 'cat' or 'add'"):
        models.TimeUNet(skip="sum")


def test_shipped_unet_loads_and_predicts_noise_better_than_zero():
    unet, meta = models.load_time_unet()
    assert meta["T"] == 200 and meta["schedule"] == "cosine"
    x0, _ = gc.data.load_mnist32("val")
    x0 = x0[:64]
    # cosine schedule, as in training: predicting the noise must beat predicting 0 (loss 1) by far
    T, s = 200, 0.008
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
    abar = (f / f[0])[1:].float()
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, T, (64,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    a = abar[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        loss = (unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t) - noise).pow(2).mean().item()
    assert loss < 0.1, loss


def test_shipped_classifier_recognises_test_digits():
    clf = models.load_digit_classifier()
    x, y = gc.data.load_mnist32("test")
    assert metrics.classifier_accuracy(clf, x[:1000], y[:1000]) > 0.98
    assert metrics.classifier_features(clf, x[:10]).shape == (10, 128)
    with pytest.raises(ValueError, match=r"expected \(B, 1, 32, 32\)"):
        clf(torch.zeros(2, 1, 28, 28))


def test_frechet_distance_matches_the_gaussian_formula():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 1, generator=g, dtype=torch.float64)
    b = 3 + 2 * torch.randn(20000, 1, generator=g, dtype=torch.float64)
    # 1-D: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2 = 9 + 1
    assert metrics.frechet_distance(a, b) == pytest.approx(10.0, rel=0.05)
    x = torch.randn(500, 8, generator=g)
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    y = torch.randn(400, 8, generator=g) @ torch.randn(8, 8, generator=g)
    assert metrics.frechet_distance(x, y) == pytest.approx(metrics.frechet_distance(y, x), rel=1e-6)
    assert metrics.frechet_distance(x + 1, x) == pytest.approx(8.0, rel=1e-6), "a shift adds |shift|^2"
    with pytest.raises(ValueError, match="need"):
        metrics.frechet_distance(x, torch.randn(5, 3))


def test_mnist32_is_padded_and_scaled():
    x, y = gc.data.load_mnist32("val")
    assert x.shape == (10000, 1, 32, 32) and y.shape == (10000,)
    assert x.min() == -1 and x.max() <= 1
    assert (x[:, :, :2] == -1).all() and (x[:, :, :, -2:] == -1).all(), "the 2-pixel border is background"


def test_image_rows_shares_one_grey_range(tmp_path):
    fig = plotting.image_rows({"a": torch.rand(3, 1, 8, 8), "b": torch.rand(2, 8, 8)}, path=tmp_path / "rows.png")
    assert (tmp_path / "rows.png").stat().st_size > 1000
    assert {im.get_clim() for ax in fig.axes for im in ax.images} == {(-1.0, 1.0)}
    with pytest.raises(ValueError, match="row 'x'"):
        plotting.image_rows({"x": torch.rand(2, 3, 8, 8)})
