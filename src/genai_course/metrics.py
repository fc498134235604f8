"""Figures for generated images: the Frechet distance between two sets of feature vectors (FID's
formula, Heusel et al., 2017) and helpers that use the shipped digit classifier's features.

The Frechet distance fits a Gaussian to each set (mean mu, covariance S) and returns
``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` -- the 2-Wasserstein distance between the two
Gaussians. With the Inception network's features it is "FID"; here the features come from
``genai_course.models.DigitClassifier`` (MNIST-FID), so its values are not comparable with
published FIDs.
"""
from __future__ import annotations

import torch


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(a)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to (N, D) and (M, D) feature sets (float64 inside)."""
    if feats_a.dim() != 2 or feats_b.dim() != 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"frechet_distance: need (N, D) and (M, D) features, got {tuple(feats_a.shape)} and "
                         f"{tuple(feats_b.shape)}")
    if min(len(feats_a), len(feats_b)) < 2:
        raise ValueError("frechet_distance: each set needs at least 2 feature vectors")
    a, b = feats_a.double(), feats_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))  # D = 1 gives a 0-d cov
    # tr((S_a S_b)^(1/2)) = tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)), a symmetric PSD matrix: eigh is stable.
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    value = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross.trace()
    return float(value.clamp_min(0))


@torch.no_grad()
def classifier_features(classifier: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, 128) features of (N, 1, 32, 32) images in [-1, 1] (on the classifier's device, returned on CPU)."""
    device = next(classifier.parameters()).device
    classifier.eval()
    return torch.cat([classifier.features(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def classifier_accuracy(classifier: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        batch_size: int = 500) -> float:
    """Fraction of (N, 1, 32, 32) images in [-1, 1] the classifier labels correctly."""
    device = next(classifier.parameters()).device
    classifier.eval()
    preds = torch.cat([classifier(images[i:i + batch_size].to(device)).argmax(-1).cpu()
                       for i in range(0, len(images), batch_size)])
    return float((preds == labels.cpu()).float().mean())


def mnist_fid(classifier: torch.nn.Module, images: torch.Tensor, reference: torch.Tensor) -> float:
    """Frechet distance between the classifier features of ``images`` and of ``reference`` images."""
    return frechet_distance(classifier_features(classifier, images), classifier_features(classifier, reference))


__all__ = ["frechet_distance", "classifier_features", "classifier_accuracy", "mnist_fid"]
