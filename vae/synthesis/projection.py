"""Flat maps of the latent space: 2-D projections of per-clip posterior means.

The Explore page draws these and places new clips (an upload) on them, so every projection
can also place points it was not fitted on. PCA is a linear map and places them exactly;
t-SNE has no such map (each run optimises the training points' positions only), so a new
point goes to the distance-weighted mean of its nearest training neighbours' positions,
found in latent space where the neighbours really are near.

t-SNE of a few thousand clips takes tens of seconds, so :func:`cached_project` keeps each
map in a folder of small files named by a digest of the means it was fitted on: the same
checkpoint content gets its map back at once, after a server restart and in every session,
and a retrained or different checkpoint (other means) is fitted anew.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae.storage.files import atomic_write_bytes
from vae.synthesis.latent import principal_directions

METHODS = ("pca", "tsne")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE"}
NEIGHBOURS = 5  # t-SNE placement: enough to average out one odd neighbour, few enough to stay local
MAP_CACHE = Path("data") / ".maps"  # hidden: the workspace lists no dataset in it
MAP_FORMAT = 1  # the version field of a cached map file; other versions are fitted anew
KEEP_MAPS = 32  # cached map files kept, newest first (each is N x 2 floats: ~24 KB for 3,000)


@dataclass(frozen=True, eq=False)
class Projection:
    """A fitted 2-D map of latent means (N, D): ``coords`` (N, 2) float32 and how to place more.

    PCA keeps ``centre`` (D,) and ``axes`` (2, D); t-SNE keeps the fitted ``means`` (N, D)
    to find neighbours. ``explained`` (2,) is PCA's variance fraction per axis (NaN for t-SNE).
    """

    method: str
    coords: np.ndarray
    means: np.ndarray
    centre: np.ndarray
    axes: np.ndarray
    explained: np.ndarray
    seed: int = 0

    def transform(self, new_means: np.ndarray) -> np.ndarray:
        """Place latent means (M, D) on this map -> (M, 2) float32."""
        new_means = _check(new_means, "new latent means", dim=self.means.shape[1], min_rows=0)
        if self.method == "pca":
            return ((new_means - self.centre) @ self.axes.T).astype(np.float32)
        return place_by_neighbours(new_means, self.means, self.coords)

    def axis_titles(self) -> tuple[str, str]:
        """Axis titles for a plot: "PC1 (62% of variance)" for PCA, "t-SNE 1" otherwise."""
        if self.method == "pca":
            return tuple(
                f"PC{i + 1} ({100 * e:.0f}% of variance)" for i, e in enumerate(self.explained)
            )
        return ("t-SNE 1", "t-SNE 2")


def _check(means: np.ndarray, what: str, dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    means = np.asarray(means, dtype=np.float32)
    if means.ndim != 2 or means.shape[1] < 1 or (dim is not None and means.shape[1] != dim):
        want = f"(N, {dim})" if dim is not None else "(N, D) with D >= 1"
        raise ValueError(f"{what} have shape {means.shape}; need {want}")
    if len(means) < min_rows:
        raise ValueError(f"{what} hold no clips; train a checkpoint on a dataset with clips")
    if not np.isfinite(means).all():
        raise ValueError(f"{what} contain NaN or infinite values; the model diverged: retrain it")
    return means


def project(means: np.ndarray, method: str = "pca", seed: int = 0) -> Projection:
    """Fit a 2-D map of latent means (N, D).

    Args:
        method: "pca" (linear, exact placement of new points) or "tsne" (keeps clusters
            apart, needs N >= 3). D == 1 gives a flat second axis under PCA.
        seed: t-SNE's random state; the same means and seed give the same map.
    """
    if method not in METHODS:
        raise ValueError(f"projection method {method!r}: choose one of {METHODS}")
    means = _check(means, "latent means")
    if method == "pca":
        return _pca(means)
    return _tsne(means, seed)


def _pca(means: np.ndarray) -> Projection:
    """Project onto the top two principal directions (padded with zeros when D or N < 2)."""
    centre, directions, spread = principal_directions(means, 2)  # (D,), (k, D), (k,)
    # SVD signs are arbitrary: point each axis's largest loading up, so the map does not
    # mirror itself when training rewrites the latents each epoch.
    flip = np.sign(directions[np.arange(len(directions)), np.abs(directions).argmax(axis=1)])
    directions = directions * np.where(flip == 0, 1, flip)[:, None]
    axes = np.zeros((2, means.shape[1]), dtype=np.float32)
    axes[: len(directions)] = directions
    variance = spread**2
    total = float(means.var(axis=0, ddof=1).sum()) if len(means) > 1 else 0.0
    explained = np.zeros(2, dtype=np.float32)
    if total > 0:
        explained[: len(variance)] = variance / total
    coords = ((means - centre) @ axes.T).astype(np.float32)  # (N, 2)
    return Projection("pca", coords, means, centre.astype(np.float32), axes, explained)


def _tsne(means: np.ndarray, seed: int) -> Projection:
    """t-SNE with the perplexity clamped below N (sklearn refuses perplexity >= N)."""
    from sklearn.manifold import TSNE  # heavy import, only when asked for

    n = len(means)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 clips, the latents hold {n}; choose PCA")
    # About a third of the other points at most: with the default 30 a small set would be
    # one blob, since every point would count most others as neighbours.
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca" if means.shape[1] >= 2 else "random",  # PCA init needs D >= 2
        random_state=seed,
        n_jobs=1,
    )
    coords = tsne.fit_transform(means.astype(np.float64)).astype(np.float32)  # (N, 2)
    return _tsne_of(means, coords, seed)


def _tsne_of(means: np.ndarray, coords: np.ndarray, seed: int) -> Projection:
    """The t-SNE Projection of means (N, D) whose fitted positions are ``coords`` (N, 2)."""
    empty = np.zeros((2, means.shape[1]), dtype=np.float32)
    nan = np.full(2, np.nan, dtype=np.float32)
    return Projection("tsne", coords, means, means.mean(axis=0), empty, nan, seed)


def map_file(means: np.ndarray, method: str, seed: int, folder: str | Path = MAP_CACHE) -> Path:
    """Where the map of ``means`` (N, D) by ``method`` and ``seed`` is kept: named by a
    digest of the means' shape and bytes, so only the same latents find it."""
    means = np.ascontiguousarray(means, dtype=np.float32)
    digest = hashlib.sha256(repr(means.shape).encode() + means.tobytes()).hexdigest()[:32]
    return Path(folder) / f"{method}-seed{seed}-{digest}.npz"


def _read_map(file: Path, n: int) -> np.ndarray | None:
    """A cached map's coords (n, 2), or None when the file is missing, of another format,
    the wrong size or damaged (then the map is fitted again and the file rewritten)."""
    try:
        with np.load(file, allow_pickle=False) as stored:
            version, coords = int(stored["format"]), stored["coords"]
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile):
        # missing, truncated, not an npz: fitted again
        return None
    if version != MAP_FORMAT or coords.shape != (n, 2) or not np.isfinite(coords).all():
        return None
    return coords.astype(np.float32)


def _keep_newest(folder: Path, keep: int = KEEP_MAPS) -> None:
    """Remove all but the ``keep`` newest map files (other checkpoints' old maps)."""
    files = sorted(folder.glob("*.npz"), key=lambda f: f.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def cached_project(
    means: np.ndarray, method: str = "pca", seed: int = 0, folder: str | Path = MAP_CACHE
) -> Projection:
    """:func:`project`, with t-SNE maps kept in ``folder`` (PCA is quick: always fitted).

    The second call with the same means and seed reads the file instead of fitting, in any
    process. A folder that cannot be written (read-only disk) only costs the cache.
    """
    if method != "tsne":
        return project(means, method, seed)
    means = _check(means, "latent means")
    file = map_file(means, method, seed, folder)
    coords = _read_map(file, len(means))
    if coords is not None:
        return _tsne_of(means, coords, seed)
    proj = project(means, method, seed)
    buf = io.BytesIO()
    np.savez(buf, format=np.int64(MAP_FORMAT), coords=proj.coords)
    try:
        atomic_write_bytes(file, buf.getvalue())
        _keep_newest(file.parent)
    except OSError:
        pass  # the map is made; only its cache could not be kept
    return proj


def place_by_neighbours(
    new_means: np.ndarray, means: np.ndarray, coords: np.ndarray, k: int = NEIGHBOURS
) -> np.ndarray:
    """Map coordinates for new means (M, D) from fitted means (N, D) and their coords (N, 2).

    Each new point lands at the inverse-distance-weighted mean of its ``k`` nearest fitted
    neighbours' coordinates; a point equal to a fitted mean lands exactly on it.
    """
    new_means = np.asarray(new_means, dtype=np.float32)
    k = max(1, min(k, len(means)))
    dist = np.linalg.norm(new_means[:, None, :] - means[None, :, :], axis=-1)  # (M, N)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]  # (M, k)
    d = np.take_along_axis(dist, nearest, axis=1)  # (M, k)
    weights = 1.0 / np.maximum(d, 1e-12)
    weights[d[:, 0] <= 1e-12] = 0.0
    weights[d[:, 0] <= 1e-12, 0] = 1.0  # on a fitted point: that point alone
    weights /= weights.sum(axis=1, keepdims=True)
    return (weights[..., None] * coords[nearest]).sum(axis=1).astype(np.float32)  # (M, 2)
