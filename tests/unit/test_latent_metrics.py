"""Interpolation paths and spectral metrics."""

import math

import numpy as np
import pytest
import torch

from vae.audio.metrics import log_spectral_distance, spectral_convergence
from vae.synthesis import latent


def test_paths_start_and_end_at_the_codes():
    a, b = torch.randn(16), torch.randn(16)
    for mode in latent.INTERPOLATION_MODES:
        path = latent.interpolation_path(a, b, 5, mode)
        assert path.shape == (5, 16)
        torch.testing.assert_close(path[0], a)
        torch.testing.assert_close(path[-1], b)


def test_slerp_keeps_norm_on_a_shell_and_lerp_does_not():
    a = torch.tensor([3.0, 0.0])
    b = torch.tensor([0.0, 3.0])
    mid_s = latent.slerp(a, b, 0.5)
    mid_l = latent.lerp(a, b, 0.5)
    assert mid_s.norm().item() == pytest.approx(3.0, abs=1e-5)
    assert mid_l.norm().item() == pytest.approx(3 / math.sqrt(2), abs=1e-5)
    torch.testing.assert_close(latent.slerp(a, a * 2, 0.5), a * 1.5)  # parallel: lerp


def test_bad_steps_and_mode_raise():
    a = torch.zeros(4)
    with pytest.raises(ValueError, match="steps=1"):
        latent.interpolation_path(a, a, 1)
    with pytest.raises(ValueError, match="'cubic'"):
        latent.interpolation_path(a, a, 3, "cubic")


def test_principal_directions_find_the_spread():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(500, 4)) * np.array([5.0, 1.0, 0.1, 0.1])
    centre, dirs, spread = latent.principal_directions(means, 2)
    assert dirs.shape == (2, 4) and abs(abs(dirs[0, 0]) - 1) < 0.01
    assert spread[0] == pytest.approx(5.0, rel=0.1) and spread[1] == pytest.approx(1.0, rel=0.1)


def test_metrics_are_zero_for_identical_and_grow_with_error():
    ref = torch.rand(3, 8, 10) + 0.1
    assert torch.allclose(spectral_convergence(ref, ref), torch.zeros(3))
    assert torch.allclose(log_spectral_distance(ref, ref, 1e-4), torch.zeros(3))
    sc = spectral_convergence(ref, ref * 1.5)
    torch.testing.assert_close(sc, torch.full((3,), 0.5))
    lsd = log_spectral_distance(ref, ref * 10, 1e-4)
    torch.testing.assert_close(lsd, torch.full((3,), 20.0))
