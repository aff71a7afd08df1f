"""vae.model.critic and vae.model.spectral_loss: the shapes, the label projection, the losses'
signs,
and a spectral distance that is 0 for the same clip and grows with blur."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vae.model.conv_vae import ModelConfig, vae_loss
from vae.model.critic import (
    CriticConfig,
    SpectrogramCritic,
    critic_loss,
    feature_matching,
    generator_loss,
    shift_time,
)
from vae.model.losses import LossSettings
from vae.model.spectral_loss import multiscale_spectral


def _harmonic(batch: int = 2, bins: int = 64, frames: int = 32) -> torch.Tensor:
    """Features (batch, bins, frames) with sharp harmonics on a floor: what a voice looks like."""
    x = torch.full((batch, bins, frames), 0.2)
    x[:, 4::8, 4:28] = 0.9
    return x


def test_critic_gives_patch_logits_per_scale_and_projects_labels() -> None:
    torch.manual_seed(0)
    critic = SpectrogramCritic(CriticConfig(channels=(8, 16), scales=(1, 2), n_labels=3))
    critic.eval()  # in training, spectral norm's power iteration moves the weights each call
    x = _harmonic(4)
    out = critic(x, torch.tensor([0, 1, 2, 0]))
    assert [tuple(logits.shape) for logits, _ in out] == [(4, 16, 8), (4, 8, 4)]
    assert [tuple(m.shape) for m in out[0][1]] == [(4, 8, 32, 16), (4, 16, 16, 8)]
    # a one-hot label weight is the same as its index; another label changes the verdict
    one_hot = F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    torch.testing.assert_close(critic(x, one_hot)[0][0], out[0][0])
    other = critic(x, torch.tensor([1, 1, 2, 0]))[0][0]
    assert not torch.allclose(other[0], out[0][0][0]) and torch.allclose(other[1:], out[0][0][1:])


def test_hinge_losses_and_feature_matching_have_the_right_signs() -> None:
    confident = [(torch.full((2, 3, 3), 2.0), [torch.ones(2, 4)])]
    fooled = [(torch.full((2, 3, 3), -2.0), [torch.zeros(2, 4)])]
    assert float(critic_loss(confident, fooled)) == 0.0  # real above 1, fake below -1
    assert float(critic_loss(fooled, confident)) == pytest.approx(6.0)  # 3 + 3
    assert float(generator_loss(confident)) == -2.0
    assert float(feature_matching(confident, confident)) == 0.0
    assert float(feature_matching(confident, fooled)) == 1.0


def test_critic_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="channels"):
        CriticConfig(channels=())
    with pytest.raises(ValueError, match="scales"):
        CriticConfig(scales=(0,))


def test_multiscale_spectral_is_zero_for_the_same_clip_and_grows_with_blur() -> None:
    x = _harmonic()
    assert torch.allclose(multiscale_spectral(x, x, 80.0), torch.zeros(2), atol=1e-3)
    blur = lambda k: F.avg_pool2d(x.unsqueeze(1), (k, 1), 1, (k // 2, 0)).squeeze(1)  # noqa: E731
    d3, d7 = multiscale_spectral(blur(3), x, 80.0), multiscale_spectral(blur(7), x, 80.0)
    assert (d3 > 1.0).all() and (d7 > d3).all()
    recon = blur(3).requires_grad_()
    multiscale_spectral(recon, x, 80.0).sum().backward()
    assert recon.grad is not None and torch.isfinite(recon.grad).all()


def test_vae_loss_with_the_multiscale_term_uses_it_as_recon() -> None:
    x, zero = _harmonic(), torch.zeros(2, 4)
    out = vae_loss(x, x, zero, zero, LossSettings(recon_loss="multiscale"))
    assert float(out.recon) == pytest.approx(0.0, abs=1e-3)
    blurred = x.roll(1, dims=1)
    ms = vae_loss(blurred, x, zero, zero, LossSettings(recon_loss="multiscale", top_db=80.0))
    assert float(ms.recon) == pytest.approx(float(multiscale_spectral(blurred, x, 80.0).mean()))
    assert ModelConfig(64, 32)  # the feature shape these tests use is a valid model shape


def test_shift_time_moves_clips_by_at_most_the_bound_and_fills_with_silence() -> None:
    x = torch.arange(1, 11, dtype=torch.float32).repeat(3, 2, 1)  # (3, 2, 10), no zeros
    gen = torch.Generator().manual_seed(0)
    moved = shift_time(x, 3, gen)
    assert moved.shape == x.shape
    for clip in moved:
        kept = clip[0][clip[0] > 0]
        assert 7 <= len(kept) <= 10  # at most 3 frames pushed out, the gap is 0
        assert torch.equal(kept, torch.arange(kept[0].item(), kept[0].item() + len(kept)))
    assert torch.equal(shift_time(x, 0, gen), x)
