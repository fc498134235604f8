"""A small convolutional VAE that maps 3x32x32 images in [0, 1] to a 4x8x8 latent and back.

Given to HW4 (``solutions/hw4/hw4.ipynb``), the miniature Stable Diffusion: the text-conditioned DiT
denoises in this VAE's latent space, and the VAE decodes its samples into pictures. The ARCHITECTURE is
given; the student writes the VAE's training loss ``vae_loss(x, recon, mu, logvar, beta)`` (reconstruction
plus beta times the KL divergence to N(0, I)) and the reparameterisation ``reparameterize(mu, logvar,
generator)``. This module samples its own z inside ``forward`` so that it works on its own, without the
student's code. The shipped checkpoint ``data/checkpoints/hw4_vae.safetensors`` was trained by
``benchmarks/hw4_train_vae.py`` on ``genai_course.data.captions.captioned_digits("train")``.

Design: an encoder of residual blocks (GroupNorm -> SiLU -> 3x3 conv, twice, plus a skip) at 32, 16 and
8 pixels with two stride-2 convolutions in between, ending in a 3x3 conv to ``2 * latent_channels``
maps (mean and log-variance); a mirror-image decoder with nearest-neighbour upsampling, ending in a
**sigmoid**, so a decoded image is always in [0, 1] (the training loss compares it with the image as it
is, no rescaling). The log-variance is clamped to [-30, 20] so that ``exp`` stays finite.

``latent_scale`` (a buffer, saved in the checkpoint) is the constant by which the latents are
multiplied before diffusion: the training script sets it to 1 / std(mu) over the training set, so that
``mu * latent_scale`` has roughly unit standard deviation, the scale the diffusion noise schedule
assumes (Stable Diffusion's 0.18215 plays the same role; Rombach et al., 2022). ``latents(x)`` and
``decode_latents(z)`` apply it and undo it.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

LOGVAR_RANGE = (-30.0, 20.0)


class _ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, GroupNorm -> SiLU -> conv3x3, + skip (1x1 conv if widths differ)."""

    def __init__(self, c_in: int, c_out: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class LatentVAE(nn.Module):
    """``encode(x (B, 3, H, W) in [0, 1]) -> (mu, logvar)``, each ``(B, latent_channels, H/4, W/4)``;
    ``decode(z) -> (B, 3, H, W)`` in [0, 1] (sigmoid output); ``forward(x, generator=None) -> (recon, mu,
    logvar)`` with ``z = mu + exp(logvar / 2) * eps`` drawn inside (``eps`` from ``generator`` if given).

    H and W must be multiples of 4 (32x32 for the course's images, giving a 4x8x8 latent).

    Args:
        channels: image channels (3: RGB).
        latent_channels: channels of the latent (4, like Stable Diffusion's).
        widths: channels at 32, 16 and 8 pixels (full, half and quarter resolution). The default (16, 48, 96),
            534,411 parameters, is narrow at full resolution, where convolutions cost the most on a CPU.
    """

    def __init__(self, channels: int = 3, latent_channels: int = 4, widths: tuple[int, int, int] = (16, 48, 96)):
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"LatentVAE: widths must give 3 channel counts (full, half, quarter), got {widths}")
        self.config = {"channels": channels, "latent_channels": latent_channels, "widths": list(widths)}
        self.channels, self.latent_channels = channels, latent_channels
        w0, w1, w2 = widths
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w0, 3, padding=1), _ResBlock(w0, w0),
            nn.Conv2d(w0, w1, 3, stride=2, padding=1), _ResBlock(w1, w1),  # 32 -> 16
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), _ResBlock(w2, w2),  # 16 -> 8
            nn.GroupNorm(min(8, w2), w2), nn.SiLU(), nn.Conv2d(w2, 2 * latent_channels, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, w2, 3, padding=1), _ResBlock(w2, w2),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w2, w1, 3, padding=1), _ResBlock(w1, w1),  # 8 -> 16
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w1, w0, 3, padding=1), _ResBlock(w0, w0),  # 16 -> 32
            nn.GroupNorm(min(8, w0), w0), nn.SiLU(), nn.Conv2d(w0, channels, 3, padding=1))
        # 1 until the training script measures it; persistent, so it travels in the checkpoint.
        self.register_buffer("latent_scale", torch.tensor(1.0))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance (clamped to ``LOGVAR_RANGE``) of the latent of ``x``."""
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"LatentVAE.encode: expected (B, {self.channels}, H, W) images in [0, 1] with H and W "
                             f"multiples of 4, got {tuple(x.shape)}")
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from (unscaled) latents ``z`` of shape ``(B, latent_channels, h, w)``."""
        if z.dim() != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f"LatentVAE.decode: expected (B, {self.latent_channels}, h, w) latents, got "
                             f"{tuple(z.shape)}")
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype,
                          device=generator.device if generator is not None else mu.device).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """The diffusion model's latents of ``x``: the posterior mean times ``latent_scale``."""
        return self.encode(x)[0] * self.latent_scale

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Images from scaled latents (what ``latents`` returns, or a diffusion sample): decode(z / latent_scale)."""
        return self.decode(z / self.latent_scale)


DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "data" / "checkpoints" / "hw4_vae.safetensors"


def load_latent_vae(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[LatentVAE, dict]:
    """The shipped VAE (eval mode, ``latent_scale`` set) and its metadata (training figures, command)."""
    from ..checkpoint import load_checkpoint

    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    _, meta = load_checkpoint(path)
    if meta.get("model", "LatentVAE") != "LatentVAE":
        raise ValueError(f"load_latent_vae: {path} holds a {meta['model']}, not a LatentVAE")
    config = dict(meta.get("config", {}))
    if "widths" in config:
        config["widths"] = tuple(config["widths"])
    model = LatentVAE(**config)
    load_checkpoint(path, model)
    return model.to(device).eval(), meta
