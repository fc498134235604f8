"""What HW4 is given besides the text encoder: the latent VAE (architecture, latent scale, loader) and the
attribute judge that scores generated images against their prompts."""
from __future__ import annotations

import pytest
import torch

import genai_course as gc
from genai_course import models
from genai_course.models import judge as judge_module
from genai_course.models import vae as vae_module


def small_vae() -> models.LatentVAE:
    torch.manual_seed(0)
    return models.LatentVAE(widths=(8, 16, 16))


def test_latent_vae_shapes_ranges_and_errors():
    vae = models.LatentVAE().eval()
    assert vae.config == {"channels": 3, "latent_channels": 4, "widths": [16, 48, 96]}
    assert 200_000 < sum(p.numel() for p in vae.parameters()) < 1_500_000
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        assert mu.shape == logvar.shape == (3, 4, 8, 8)
        recon = vae.decode(torch.randn(3, 4, 8, 8) * 10)
        assert recon.shape == (3, 3, 32, 32) and recon.min() >= 0 and recon.max() <= 1, "sigmoid output"
        out, mu2, logvar2 = vae(x)
        assert out.shape == x.shape and torch.equal(mu, mu2) and torch.equal(logvar, logvar2)
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\)"):
        vae.encode(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="multiples of 4"):
        vae.encode(torch.rand(2, 3, 30, 30))
    with pytest.raises(ValueError, match=r"expected \(B, 4, h, w\) latents"):
        vae.decode(torch.rand(2, 3, 8, 8))


def test_latent_vae_log_variance_is_clamped():
    vae = small_vae()
    last = vae.encoder[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0] * 4 + [-100.0, 100.0, 0.0, 0.0]))
        _, logvar = vae.encode(torch.rand(1, 3, 32, 32))
    assert logvar[0, 0].unique().item() == vae_module.LOGVAR_RANGE[0]
    assert logvar[0, 1].unique().item() == vae_module.LOGVAR_RANGE[1]


def test_latent_vae_forward_samples_z_from_mu_and_logvar_reproducibly():
    vae = small_vae()
    x = torch.rand(2, 3, 32, 32)
    a = vae(x, generator=torch.Generator().manual_seed(3))[0]
    b = vae(x, generator=torch.Generator().manual_seed(3))[0]
    c = vae(x, generator=torch.Generator().manual_seed(4))[0]
    assert torch.equal(a, b), "a fixed generator fixes the sample"
    assert not torch.allclose(a, c), "another seed draws another z"
    # the sample is z = mu + exp(logvar / 2) * eps, eps the generator's first normal draws
    mu, logvar = vae.encode(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, vae.decode(mu + torch.exp(0.5 * logvar) * eps), atol=1e-6)


def test_latent_vae_encode_decode_is_differentiable_end_to_end():
    vae = small_vae()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    recon, mu, logvar = vae(x, generator=torch.Generator().manual_seed(0))
    loss = (recon - x.detach()).pow(2).sum() + (mu.pow(2) + logvar.exp() - logvar).sum()
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "gradients reach the input through encode and decode"
    missing = [n for n, p in vae.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_latent_scale_scales_the_latents_and_round_trips_through_a_checkpoint(tmp_path):
    vae = small_vae().eval()
    assert vae.latent_scale.item() == 1.0 and "latent_scale" in vae.state_dict()
    vae.latent_scale.fill_(0.37)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        mu, _ = vae.encode(x)
        assert torch.allclose(vae.latents(x), 0.37 * mu)
        assert torch.allclose(vae.decode_latents(vae.latents(x)), vae.decode(mu), atol=1e-6)
    path = gc.save_checkpoint(vae, tmp_path / "vae.safetensors", meta={"model": "LatentVAE", "config": vae.config,
                                                                        "beta": 0.01})
    loaded, meta = models.load_latent_vae(path)
    assert meta["beta"] == 0.01 and not loaded.training
    assert loaded.latent_scale.item() == pytest.approx(0.37)
    assert loaded.config == vae.config
    with torch.no_grad():
        assert torch.equal(loaded.latents(x), vae.latents(x))


def test_loading_the_wrong_checkpoint_raises(tmp_path):
    vae, judge = small_vae(), models.AttributeJudge(width=8)
    judge_path = gc.save_checkpoint(judge, tmp_path / "judge.safetensors",
                                    meta={"model": "AttributeJudge", "config": judge.config})
    vae_path = gc.save_checkpoint(vae, tmp_path / "vae.safetensors", meta={"model": "LatentVAE", "config": vae.config})
    with pytest.raises(ValueError, match="not a LatentVAE"):
        models.load_latent_vae(judge_path)
    with pytest.raises(ValueError, match="not an AttributeJudge"):
        models.load_attribute_judge(vae_path)
    # a state dict without the latent scale, and one with a renamed weight, are refused (strict loading)
    state = {k: v for k, v in vae.state_dict().items() if k != "latent_scale"}
    gc.save_checkpoint(state, tmp_path / "no_scale.safetensors", meta={"config": vae.config})
    with pytest.raises(RuntimeError, match="latent_scale"):
        models.load_latent_vae(tmp_path / "no_scale.safetensors")
    state = judge.state_dict()
    state["heads.shape.weight"] = state.pop("heads.position.weight")
    gc.save_checkpoint(state, tmp_path / "renamed.safetensors", meta={"config": judge.config})
    with pytest.raises(RuntimeError, match="heads.position.weight"):
        models.load_attribute_judge(tmp_path / "renamed.safetensors")
    with pytest.raises(FileNotFoundError):
        models.load_latent_vae(tmp_path / "absent.safetensors")


def test_attribute_judge_shapes_predict_and_errors():
    torch.manual_seed(0)
    judge = models.AttributeJudge(width=8).train()
    x = torch.rand(5, 3, 32, 32)
    logits = judge(x)
    assert {k: tuple(v.shape) for k, v in logits.items()} == {"digit": (5, 10), "colour": (5, 4), "position": (5, 4)}
    pred = judge.predict(x, batch_size=2)
    assert judge.training, "predict restores the training mode"
    judge.eval()
    with torch.no_grad():
        expected = {k: v.argmax(-1) for k, v in judge(x).items()}
    for k in ("digit", "colour", "position"):
        assert pred[k].dtype == torch.int64 and torch.equal(pred[k], expected[k]), k
    with pytest.raises(ValueError, match=r"expected \(B, 3, 32, 32\)"):
        judge(torch.rand(2, 1, 32, 32))


def test_attribute_judge_score_counts_each_attribute_and_all_three(monkeypatch):
    judge = models.AttributeJudge(width=8)
    # image i carries its index in its first pixel; the fake predict reads it back, so chunking is harmless
    images = torch.zeros(5, 3, 32, 32)
    images[:, 0, 0, 0] = torch.arange(5.0)
    answers = {"digit": torch.tensor([3, 1, 4, 1, 5]), "colour": torch.tensor([0, 1, 2, 3, 0]),
               "position": torch.tensor([2, 2, 2, 2, 2])}
    monkeypatch.setattr(judge, "predict",
                        lambda x: {k: v[x[:, 0, 0, 0].long()] for k, v in answers.items()})
    score = judge.score(images, digit=[3, 1, 4, 7, 5], colour=torch.tensor([0, 1, 0, 3, 0]),
                        position=torch.tensor([2, 2, 2, 2, 1]))
    # digit wrong for image 3, colour wrong for image 2, position wrong for image 4: only images 0 and 1 all right
    assert score == pytest.approx({"digit": 0.8, "colour": 0.8, "position": 0.8, "all": 0.4})
    assert all(isinstance(v, float) for v in score.values())
    assert judge.score(images, answers["digit"], answers["colour"], answers["position"])["all"] == 1.0
    with pytest.raises(ValueError, match="as many digit/colour/position labels as images"):
        judge.score(images, [1, 2], [0] * 5, [0] * 5)


def test_attribute_judge_round_trips_through_its_loader(tmp_path):
    torch.manual_seed(0)
    judge = models.AttributeJudge(width=8).eval()
    x = torch.rand(4, 3, 32, 32)
    path = gc.save_checkpoint(judge, tmp_path / "judge.safetensors", meta={"model": "AttributeJudge",
                                                                           "config": judge.config, "val": {"all": 1}})
    loaded, meta = models.load_attribute_judge(path)
    assert meta["val"] == {"all": 1} and not loaded.training and loaded.config == judge.config
    with torch.no_grad():
        for k, v in judge(x).items():
            assert torch.allclose(loaded(x)[k], v), k


def test_hw4_models_name_their_notebook_and_are_exported():
    for module in (vae_module, judge_module):
        assert "solutions/hw4/hw4.ipynb" in module.__doc__, module.__name__
    assert "vae_loss" in vae_module.__doc__ and "latent_scale" in vae_module.__doc__
    for name in ("LatentVAE", "load_latent_vae", "AttributeJudge", "load_attribute_judge"):
        assert name in models.__all__ and hasattr(models, name)
    assert vae_module.DEFAULT_CHECKPOINT.name == "hw4_vae.safetensors"
    assert judge_module.DEFAULT_CHECKPOINT.name == "hw4_judge.safetensors"


# ---- the shipped checkpoints (data/checkpoints/hw4_judge.safetensors, hw4_vae.safetensors)

def test_shipped_judge_reads_real_images_of_val_and_heldout():
    from genai_course.data.captions import captioned_digits

    judge, meta = models.load_attribute_judge()
    assert meta["model"] == "AttributeJudge" and meta["command"].startswith("benchmarks/hw4_train_judge.py")
    for split, floor in (("val", 0.98), ("heldout", 0.97)):
        data = captioned_digits(split)
        score = judge.score(data["images"], data["digit"], data["colour"], data["position"])
        assert score["all"] >= floor, (split, score)
        assert score["colour"] >= 0.995 and score["position"] >= 0.995, (split, score)
        assert abs(score["all"] - meta[split]["all"]) < 0.002, "the recorded figure is reproduced"


def test_shipped_vae_latent_scale_and_reconstructions_pass_the_judge():
    from genai_course.data.captions import captioned_digits

    vae, meta = models.load_latent_vae()
    judge, _ = models.load_attribute_judge()
    assert meta["model"] == "LatentVAE" and meta["command"].startswith("benchmarks/hw4_train_vae.py")
    assert vae.latent_scale.item() == pytest.approx(meta["latent_scale"], rel=1e-6) and meta["latent_scale"] != 1.0
    x = captioned_digits("train", n=2000)["images"]
    with torch.no_grad():
        z = vae.latents(x)
    assert z.shape == (2000, 4, 8, 8) and 0.85 < z.std().item() < 1.15 and abs(z.mean().item()) < 0.2
    assert meta["quality_gate"]["passed"]
    g = torch.Generator().manual_seed(0)
    for split in ("val", "heldout"):
        data = captioned_digits(split, n=1000)
        labels = (data["digit"], data["colour"], data["position"])
        with torch.no_grad():
            mu, logvar = vae.encode(data["images"])
            recon = vae.decode(mu)
            sampled = vae.decode(mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g))
        assert (recon - data["images"]).pow(2).mean().item() < 5e-4, split
        assert judge.score(recon, *labels)["all"] >= 0.90, split
        assert judge.score(sampled, *labels)["all"] >= 0.90, split
