"""2-D maps of latent means: PCA by SVD, t-SNE with a seed, placing new points."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vae.synthesis.projection import cached_project, map_file, place_by_neighbours, project

ROOT = Path(__file__).resolve().parents[2]


def _blobs(n_per: int = 15, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight, far-apart Gaussian blobs: means (3 * n_per, dim) and blob ids."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, dim) * 20.0
    means = np.concatenate([c + rng.normal(0, 0.5, (n_per, dim)) for c in centres])
    return means.astype(np.float32), np.repeat(np.arange(3), n_per)


def test_pca_orders_axes_by_variance_as_numpy_svd_does():
    rng = np.random.default_rng(1)
    # Spreads 5, 2 and 0.5 along three rotated axes.
    rot, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    means = (rng.normal(size=(200, 5)) * [5.0, 2.0, 0.5, 0.1, 0.1]) @ rot.T
    proj = project(means, "pca")
    assert proj.coords.shape == (200, 2) and proj.coords.dtype == np.float32
    centred = means - means.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:2].T
    for axis in range(2):  # same axes up to sign, in the same (variance) order
        corr = np.corrcoef(proj.coords[:, axis], expected[:, axis])[0, 1]
        assert abs(corr) == pytest.approx(1.0, abs=1e-5)
    var = proj.coords.var(axis=0)
    assert var[0] > var[1]
    np.testing.assert_allclose(proj.explained, s[:2] ** 2 / (s**2).sum(), rtol=1e-4)
    assert proj.axis_titles()[0].startswith("PC1 (")


def test_pca_transform_of_training_means_equals_coords():
    means, _ = _blobs()
    proj = project(means, "pca")
    np.testing.assert_allclose(proj.transform(means), proj.coords, atol=1e-4)
    # A new point halfway between two training means lands halfway between their coords.
    mid = proj.transform((means[:1] + means[-1:]) / 2)[0]
    np.testing.assert_allclose(mid, (proj.coords[0] + proj.coords[-1]) / 2, atol=1e-4)


def test_pca_handles_one_dimension_and_few_clips():
    proj = project(np.array([[0.0], [1.0], [3.0]]), "pca")
    np.testing.assert_allclose(
        np.abs(proj.coords[:, 0]), np.abs([-4 / 3, -1 / 3, 5 / 3]), atol=1e-5
    )
    np.testing.assert_array_equal(proj.coords[:, 1], 0.0)  # a flat second axis
    single = project(np.ones((1, 4)), "pca")
    np.testing.assert_array_equal(single.coords, np.zeros((1, 2)))


@pytest.mark.slow
def test_tsne_is_deterministic_for_a_seed_and_keeps_blobs_apart():
    means, blob = _blobs()
    a, b = project(means, "tsne", seed=3), project(means, "tsne", seed=3)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert a.coords.shape == (45, 2) and np.isfinite(a.coords).all()
    centres = np.stack([a.coords[blob == i].mean(axis=0) for i in range(3)])
    spread = max(np.linalg.norm(a.coords[blob == i] - centres[i], axis=1).max() for i in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread  # every blob stays its own island
    assert a.axis_titles() == ("t-SNE 1", "t-SNE 2")


def test_tsne_clamps_perplexity_on_tiny_sets_and_refuses_too_few():
    proj = project(np.random.default_rng(0).normal(size=(4, 1)), "tsne")  # D == 1 too
    assert proj.coords.shape == (4, 2) and np.isfinite(proj.coords).all()
    with pytest.raises(ValueError, match="at least 3 clips.*choose PCA"):
        project(np.zeros((2, 3)), "tsne")


@pytest.mark.slow
def test_new_points_under_tsne_land_among_their_neighbours():
    means, blob = _blobs()
    proj = project(means, "tsne", seed=0)
    np.testing.assert_allclose(proj.transform(means[:5]), proj.coords[:5], atol=1e-5)
    new = means[blob == 2].mean(axis=0, keepdims=True) + 0.1  # inside blob 2 in latent space
    point = proj.transform(new)[0]
    own = proj.coords[blob == 2]
    others = proj.coords[blob != 2]
    assert np.linalg.norm(own - point, axis=1).min() < np.linalg.norm(others - point, axis=1).min()
    assert (
        np.linalg.norm(point - own.mean(axis=0))
        < np.linalg.norm(own - own.mean(axis=0), axis=1).max()
    )


def test_place_by_neighbours_weights_by_inverse_distance():
    means = np.array([[0.0], [1.0], [10.0]])
    coords = np.array([[0.0, 0.0], [3.0, 0.0], [100.0, 100.0]], dtype=np.float32)
    # Distances 0.25 and 0.75 to the two nearest: weights 3:1 -> 0.75 of the way to 0.
    out = place_by_neighbours(np.array([[0.25]]), means, coords, k=2)
    np.testing.assert_allclose(out, [[0.75, 0.0]], atol=1e-6)


def test_bad_inputs_name_the_problem_and_the_fix():
    with pytest.raises(ValueError, match="'umap'"):
        project(np.zeros((5, 2)), "umap")
    with pytest.raises(ValueError, match="NaN.*retrain"):
        project(np.array([[0.0, np.nan], [1.0, 1.0]]), "pca")
    with pytest.raises(ValueError, match="no clips"):
        project(np.zeros((0, 3)), "pca")
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        project(np.zeros((5, 2)), "pca").transform(np.zeros((1, 3)))


def _map_in_new_process(means_file: Path, folder: Path) -> tuple[np.ndarray, bool]:
    """cached_project in a fresh Python (a restarted server): its coords, and whether it
    fitted (sklearn's t-SNE imported) or read the kept map."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from vae.synthesis.projection import cached_project
        proj = cached_project(np.load({str(means_file)!r}), "tsne", 0, {str(folder)!r})
        np.save({str(means_file.with_suffix(".coords.npy"))!r}, proj.coords)
        print("fitted" if "sklearn.manifold" in sys.modules else "read")
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return np.load(means_file.with_suffix(".coords.npy")), run.stdout.strip() == "fitted"


@pytest.mark.slow  # three fresh Pythons, two of them fit t-SNE
def test_a_tsne_map_is_kept_by_its_latents_and_read_back_after_a_restart(tmp_path):
    """Issue 24 item 11: t-SNE of the shipped checkpoint took 17.6 s on every visit."""
    means, _ = _blobs()
    np.save(tmp_path / "means.npy", means)
    folder = tmp_path / "maps"
    first, fitted = _map_in_new_process(tmp_path / "means.npy", folder)
    assert fitted
    file = map_file(means, "tsne", 0, folder)
    kept = file.stat()
    again, fitted = _map_in_new_process(tmp_path / "means.npy", folder)
    assert not fitted  # no t-SNE in the second process: the map came from the file
    np.testing.assert_array_equal(again, first)
    assert (file.stat().st_ino, file.stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    proj = cached_project(means, "tsne", 0, folder)  # a Projection as good as a fitted one
    np.testing.assert_array_equal(proj.coords, first)
    np.testing.assert_allclose(proj.transform(means[:3]), first[:3], atol=1e-5)
    assert proj.axis_titles() == ("t-SNE 1", "t-SNE 2")

    other = means.copy()
    other[0, 0] += 1.0  # another checkpoint's (or a retrained one's) latents
    np.save(tmp_path / "means.npy", other)
    _, fitted = _map_in_new_process(tmp_path / "means.npy", folder)
    assert fitted and map_file(other, "tsne", 0, folder) != file
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [file.name, map_file(other, "tsne", 0, folder).name]
    )  # written atomically: no temp file left


def test_a_damaged_or_unwritable_map_cache_only_costs_a_refit(tmp_path):
    means = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    folder = tmp_path / "maps"
    fitted = cached_project(means, "tsne", 0, folder)
    map_file(means, "tsne", 0, folder).write_bytes(b"PK\x03\x04 cut short")
    np.testing.assert_array_equal(cached_project(means, "tsne", 0, folder).coords, fitted.coords)
    assert np.load(map_file(means, "tsne", 0, folder))["coords"].shape == (12, 2)  # rewritten
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    proj = cached_project(means, "tsne", 0, blocked / "maps")
    np.testing.assert_array_equal(proj.coords, fitted.coords)
    assert cached_project(means, "pca", 0, folder).method == "pca"
