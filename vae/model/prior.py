"""A learned prior: where the codes of real clips really lie, one Gaussian mixture per label.

A VAE's decoder only learns the codes its encoder hands it. N(0, I) covers the space between
the posteriors too, and there the decoder fills holes with the wrong digit (the beta study
found samples heard as another digit while reconstructions were right). Fitting a small
Gaussian mixture to the posterior means of the training clips, per label (or once for an
unlabelled or unconditional model), and sampling from it instead keeps samples where
reconstructions are. Interpolation, the sliders and reconstructions do not use it: morphs stay
as smooth as before.

Stored as ``prior.npz`` in the checkpoint folder: plain arrays (no pickle), a format version,
written atomically beside latents.npz after every epoch.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae.storage import limits
from vae.storage.files import atomic_write_bytes

PRIOR_FILE = "prior.npz"
PRIOR_FORMAT_VERSION = 1
# Per label: up to this many components, each needing at least MIN_PER_COMPONENT clips
# (and twice the latent size).
MAX_COMPONENTS = 4
MIN_PER_COMPONENT = 24
ALL = -1  # the "label" of the one mixture fitted over every clip


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture in latent space: weights (K,), means (K, D), full covariances'
    Cholesky factors (K, D, D)."""

    weights: np.ndarray
    means: np.ndarray
    chol: np.ndarray

    def sample(self, n: int, temperature: float, rng: np.random.Generator) -> np.ndarray:
        """``n`` codes (n, D): a component by weight, then its mean plus ``temperature`` times
        its spread (0 gives the component means)."""
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        eps = rng.standard_normal((n, self.means.shape[1]))
        spread = np.einsum("nij,nj->ni", self.chol[k], eps)  # (n, D)
        return (self.means[k] + temperature * spread).astype(np.float32)


class LatentPrior:
    """One :class:`Mixture` per label index (or :data:`ALL`)."""

    def __init__(self, mixtures: dict[int, Mixture]):
        if not mixtures:
            raise ValueError("a learned prior needs at least one mixture")
        self.mixtures = mixtures

    @property
    def latent_dim(self) -> int:
        return next(iter(self.mixtures.values())).means.shape[1]

    def sample(
        self, n: int, label: int = ALL, temperature: float = 1.0, seed: int | None = None
    ) -> np.ndarray:
        """``n`` codes (n, D) for ``label``; ValueError when the prior has no such label."""
        mixture = self.mixtures.get(label, self.mixtures.get(ALL))
        if mixture is None:
            raise ValueError(
                f"the learned prior has no mixture for label index {label} "
                f"(it knows {sorted(self.mixtures)}); retrain or refit it"
            )
        return mixture.sample(n, temperature, np.random.default_rng(seed))


def fit_mixture(codes: np.ndarray, seed: int = 0) -> Mixture:
    """Fit a full-covariance mixture to ``codes`` (n, D), with as many components (up to
    MAX_COMPONENTS) as the clips allow; the covariance floor keeps a few clips stable."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"codes of shape {codes.shape}: need (n >= 2, D) to fit a prior")
    # A full covariance in D dimensions needs a few times D clips to be estimated at all.
    per_component = max(MIN_PER_COMPONENT, 2 * codes.shape[1])
    k = int(np.clip(len(codes) // per_component, 1, MAX_COMPONENTS))
    floor = 1e-3 * float(codes.var(axis=0).mean() or 1.0)
    gmm = GaussianMixture(k, covariance_type="full", reg_covar=floor, random_state=seed)
    # One thread: beside torch's threads in a training process, BLAS threads fought them
    # for the cores and a fit of 11 mixtures took 13-16 s a epoch instead of 1 s.
    with threadpool_limits(1):
        gmm.fit(codes)
    chol = np.linalg.cholesky(gmm.covariances_)  # (K, D, D)
    weights = gmm.weights_ / gmm.weights_.sum()
    return Mixture(weights.astype(np.float64), gmm.means_.astype(np.float32), chol)


def fit_prior(
    means: np.ndarray, labels: np.ndarray, conditional: bool, seed: int = 0
) -> LatentPrior | None:
    """A prior over posterior means (N, D) with label indices (N,) (-1 unlabelled): one
    mixture per label with at least two clips when ``conditional``, and one over all; None
    when there are fewer than two clips (sampling then uses N(0, I))."""
    means, labels = np.asarray(means), np.asarray(labels)
    mixtures: dict[int, Mixture] = {}
    if conditional:
        for label in sorted(set(labels.tolist()) - {-1}):
            mine = means[labels == label]
            if len(mine) >= 2:
                mixtures[int(label)] = fit_mixture(mine, seed)
    if len(means) >= 2:
        mixtures[ALL] = fit_mixture(means, seed)
    return LatentPrior(mixtures) if mixtures else None


def write_prior(folder: str | Path, prior: LatentPrior) -> Path:
    """prior.npz in ``folder``, atomically: per mixture, its label and arrays."""
    arrays: dict[str, np.ndarray] = {"format_version": np.array(PRIOR_FORMAT_VERSION)}
    arrays["labels"] = np.array(sorted(prior.mixtures), dtype=np.int64)
    for label in arrays["labels"].tolist():
        m = prior.mixtures[label]
        arrays[f"w{label}"], arrays[f"mu{label}"], arrays[f"L{label}"] = m.weights, m.means, m.chol
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(Path(folder) / PRIOR_FILE, buf.getvalue())


def read_prior(folder: str | Path, latent_dim: int) -> LatentPrior | None:
    """The prior in ``folder``, or None when there is none (older checkpoints).

    Raises:
        ValueError: the file is unreadable, of another version, or of the wrong shape,
            naming the file and the fix.
    """
    file = Path(folder) / PRIOR_FILE
    if not file.is_file():
        return None
    fix = "delete it (samples then come from N(0, I)) or resume training to rewrite it"
    try:
        limits.npz_headers(file)  # sizes from the headers, before anything is decompressed
    except limits.LimitError as err:
        raise limits.LimitError(f"{err}; {fix}") from None
    try:
        with np.load(file, allow_pickle=False) as data:
            version = int(data["format_version"])
            if version != PRIOR_FORMAT_VERSION:
                raise ValueError(f"format_version {version}, not {PRIOR_FORMAT_VERSION}")
            mixtures = {}
            for label in data["labels"].tolist()[:10_000]:
                w, mu, chol = (np.asarray(data[f"{p}{label}"]) for p in ("w", "mu", "L"))
                k = len(w)
                if (
                    w.shape != (k,) or mu.shape != (k, latent_dim)
                    or chol.shape != (k, latent_dim, latent_dim)
                    or not (np.isfinite(w).all() and np.isfinite(mu).all())
                    or not np.isfinite(chol).all() or (w < 0).any() or not w.sum() > 0
                ):  # fmt: skip
                    raise ValueError(f"mixture {label} has shapes {w.shape}, {mu.shape}, "
                                     f"{chol.shape} for latent_dim {latent_dim}")  # fmt: skip
                mixtures[int(label)] = Mixture(w / w.sum(), mu.astype(np.float32), chol)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{file}: unusable learned prior ({err}); {fix}") from None
    return LatentPrior(mixtures)
