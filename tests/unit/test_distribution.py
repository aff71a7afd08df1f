"""Fréchet distance and inception score against values known in closed form."""

import numpy as np
import pytest

from vae.evaluation.distribution import (
    embedding_stats,
    frechet_distance,
    frechet_distance_from_stats,
    inception_score,
)


def test_identical_sets_are_at_distance_zero():
    x = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, x[::-1]) == pytest.approx(0.0, abs=1e-8)  # order is no matter


def test_a_shifted_set_is_at_the_squared_length_of_the_shift():
    x = np.random.default_rng(1).normal(size=(300, 6)) @ np.diag([1, 2, 3, 0.5, 1, 4])
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 1.0])
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_gaussians_with_diagonal_covariances_match_the_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([0.0, 1.0, 0.0])
    expected = 1.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # |dmu|^2 + sum (sa - sb)^2
    got = frechet_distance_from_stats(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-9)
    assert frechet_distance_from_stats(mu2, np.diag(b), mu1, np.diag(a)) == pytest.approx(got)


def test_a_narrower_set_is_further_away():
    rng = np.random.default_rng(2)
    real, other = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    collapsed = 0.1 * rng.normal(size=(500, 4))
    assert frechet_distance(real, collapsed) > 5 * frechet_distance(real, other)


def test_singular_covariances_still_give_a_finite_distance():
    x = np.random.default_rng(3).normal(size=(5, 16))  # 5 clips, 16 dimensions: rank 4
    d = frechet_distance(x, x + 1.0)
    assert np.isfinite(d) and d == pytest.approx(16.0, rel=1e-3)


def test_stats_need_two_clips():
    with pytest.raises(ValueError, match="n >= 2"):
        embedding_stats(np.zeros((1, 4)))
    mu, cov = embedding_stats(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert mu.tolist() == [1.0, 2.0] and cov.shape == (2, 2)


def test_inception_score_of_confident_uniform_labels_is_the_label_count():
    k = 7
    probs = np.eye(k)[np.arange(70) % k]  # one-hot, every label equally often
    assert inception_score(probs) == pytest.approx(k)
    assert inception_score(probs, splits=10) == pytest.approx(k)  # each split holds all 7


def test_inception_score_of_identical_rows_is_one():
    row = np.array([0.7, 0.2, 0.1, 0.0])
    assert inception_score(np.tile(row, (50, 1))) == pytest.approx(1.0)
    assert inception_score(np.tile(np.eye(4)[2], (50, 1))) == pytest.approx(1.0)  # always "2"


def test_inception_score_falls_when_clips_are_unsure():
    sure = np.eye(5)[np.arange(50) % 5]
    unsure = 0.5 * sure + 0.5 / 5
    assert 1.0 < inception_score(unsure) < inception_score(sure)
    with pytest.raises(ValueError, match="n >= splits"):
        inception_score(sure[:3], splits=4)
