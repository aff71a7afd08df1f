"""How far a set of clips is from the real ones as a whole, not clip by clip.

Two figures over what a classifier (the judge) hears, after the image-generation metrics:

- **Fréchet distance** between two sets of embeddings (the judge's pooled penultimate
  features), each summarised by its mean and covariance: 0 for the same distribution; it
  grows when a set is off-centre, too narrow (one clip said again and again) or too wide.
- **Inception score** of the judge's label probabilities: exp of the mean KL divergence
  between each clip's p(y|x) and the set's p(y). Near the number of labels when every clip
  is clearly one label and all labels are heard equally often; 1 when every clip sounds alike.

Both depend on the number of clips (fewer clips, larger Fréchet distance): compare sets of
similar size, and read each against the floor of real clips scored the same way.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def embedding_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (C,) and covariance (C, C) of embeddings (n, C), in float64.

    Raises:
        ValueError: fewer than two rows (no covariance) or not a 2-D array.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(
            f"embeddings of shape {x.shape}: the Fréchet distance needs (n, C) with n >= 2 clips"
        )
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between Gaussians (C,), (C, C).

    The matrix square root comes from ``scipy.linalg.sqrtm``; its tiny imaginary part
    (rounding) is dropped. When the product is singular enough for the root to fail, ``eps``
    is added to both diagonals, as the reference implementation of FID does.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(
            f"means {mu1.shape}, {mu2.shape} and covariances {s1.shape}, {s2.shape} must be "
            "(C,) and (C, C) of one size C"
        )
    diff = mu1 - mu2
    root = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(root).all():
        offset = np.eye(len(s1)) * eps
        root = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    trace = float(np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(root)))
    # Rounding can leave a distance of identical sets a hair below zero.
    return max(float(diff @ diff) + trace, 0.0)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between two sets of embeddings (n, C) and (m, C)."""
    return frechet_distance_from_stats(*embedding_stats(a), *embedding_stats(b))


def inception_score(probs: np.ndarray, splits: int = 1) -> float:
    """exp(mean KL(p(y|x) || p(y))) of label probabilities (n, K), averaged over ``splits``
    consecutive parts (each with its own p(y)), as the original inception score.

    Returns a value in [1, K].

    Raises:
        ValueError: not (n, K), or fewer clips than splits.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) < max(splits, 1) or splits < 1:
        raise ValueError(
            f"probabilities of shape {p.shape} in {splits} splits: "
            "need (n, K) with n >= splits >= 1"
        )
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)  # p(y): (1, K)
        # 0 * log 0 = 0: labels a clip gives no probability add nothing to its divergence.
        ratio = np.where(part > 0, part / np.maximum(marginal, 1e-300), 1.0)
        kl = (part * np.log(ratio)).sum(axis=1)  # (n,)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores))


def set_figures(
    reference: tuple[np.ndarray, np.ndarray], embeddings: np.ndarray, probs: np.ndarray
) -> dict[str, float | int]:
    """{"frechet", "inception_score", "clips"} of one set of clips: its embeddings (n, C)
    against the reference's (mean (C,), covariance (C, C)), and its probabilities (n, K)."""
    return {
        "frechet": frechet_distance_from_stats(*embedding_stats(embeddings), *reference),
        "inception_score": inception_score(probs),
        "clips": int(len(embeddings)),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return float(numerator / denominator)
