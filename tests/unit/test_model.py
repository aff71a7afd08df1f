"""ModelConfig and ConvVAE: shapes for any feature shape, conditioning, batching, the loss."""

from __future__ import annotations

import pytest
import torch

from vae.audio.features import PRESETS, FeatureConfig
from vae.model.conv_vae import (
    MODEL_SIZES,
    ConvVAE,
    ModelConfig,
    count_parameters,
    inert_parameters,
    vae_loss,
)
from vae.model.losses import LossSettings

TINY = (4, 8)  # two stages: fast enough to try many shapes


def _model(bins: int, frames: int, channels=TINY, **kw) -> ConvVAE:
    torch.manual_seed(0)
    return ConvVAE(ModelConfig(bins, frames, channels=channels, latent_dim=3, **kw)).eval()


@pytest.mark.parametrize(
    "shape",
    [(256, 64), (128, 128), (100, 37), (33, 5), (1, 1), (7, 300)],
)
def test_encode_decode_keep_any_shape(shape: tuple[int, int]) -> None:
    model = _model(*shape)
    x = torch.rand(2, *shape)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 3)
    out = model.decode(mu)
    assert out.shape == (2, *shape)
    assert out.min() >= 0 and out.max() <= 1
    recon, mu2, _ = model(x)
    assert recon.shape == x.shape
    torch.testing.assert_close(mu2, mu)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_default_model_fits_every_preset(name: str) -> None:
    cfg: FeatureConfig = PRESETS[name]
    model = ConvVAE(ModelConfig(*cfg.shape)).eval()
    with torch.no_grad():
        recon, mu, _ = model(torch.rand(1, *cfg.shape))
    assert recon.shape == (1, *cfg.shape) and mu.shape == (1, 16)


def test_padding_is_cropped_not_leaked() -> None:
    """The decoder output for a 100 x 37 input is exactly 100 x 37, and the input's padding
    (zeros beyond the edge) does not depend on the content: changing the last real column
    changes the code."""
    model = _model(100, 37)
    x = torch.rand(1, 100, 37)
    y = x.clone()
    y[:, :, -1] = 1 - y[:, :, -1]
    assert not torch.allclose(model.encode(x)[0], model.encode(y)[0])


def test_config_validation_names_the_value() -> None:
    for kwargs, word in [
        ({"n_bins": 0, "n_frames": 4}, "n_bins=0"),
        ({"n_bins": 4, "n_frames": 4, "channels": ()}, "channels=()"),
        ({"n_bins": 4, "n_frames": 4, "channels": (8, 0)}, "channels=(8, 0)"),
        ({"n_bins": 4, "n_frames": 4, "latent_dim": 0}, "latent_dim=0"),
        ({"n_bins": 4, "n_frames": 4, "n_labels": -1}, "n_labels=-1"),
    ]:
        with pytest.raises(ValueError, match=word.replace("(", r"\(").replace(")", r"\)")):
            ModelConfig(**kwargs)


def test_config_round_trips_through_dict() -> None:
    cfg = ModelConfig(128, 33, channels=[8, 16], latent_dim=5, n_labels=3, label_dim=4)
    assert cfg.channels == (8, 16)  # a list (from JSON) is stored as a tuple
    data = cfg.to_dict()
    assert data["channels"] == [8, 16] and data["format_version"] == 1
    assert ModelConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="format_version 9"):
        ModelConfig.from_dict({**data, "format_version": 9})
    with pytest.raises(ValueError, match="unknown model config fields"):
        ModelConfig.from_dict({**data, "dropout": 0.1})


def test_default_model_is_small() -> None:
    model = ConvVAE(ModelConfig(256, 64))
    assert model.config.channels == MODEL_SIZES["small"]
    assert count_parameters(model) < 1_000_000


def test_conditional_model_needs_labels() -> None:
    model = _model(32, 16, n_labels=3, label_dim=2)
    x = torch.rand(2, 32, 16)
    for call in (
        lambda: model.encode(x),
        lambda: model.decode(torch.zeros(2, 3)),
        lambda: model(x),
        lambda: model.sample(2),
    ):
        with pytest.raises(ValueError, match="conditional on 3 labels: pass labels"):
            call()
    with pytest.raises(ValueError, match=r"out of range.*0\.\.2"):
        model.encode(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="unlabelled"):
        model.encode(x, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="3 labels for a batch of 2"):
        model.encode(x, torch.tensor([0, 1, 2]))


def test_label_changes_the_output_and_one_hot_equals_index() -> None:
    model = _model(32, 16, n_labels=3, label_dim=2)
    z = torch.zeros(1, 3)
    a, b = model.decode(z, [0]), model.decode(z, [2])
    assert not torch.allclose(a, b)
    torch.testing.assert_close(model.decode(z, torch.tensor([[0.0, 0.0, 1.0]])), b)
    torch.testing.assert_close(model.decode(z.expand(4, 3), 2), b.expand(4, 32, 16))
    x = torch.rand(2, 32, 16)
    assert not torch.allclose(model.encode(x, [0, 0])[0], model.encode(x, [1, 1])[0])


def test_unconditional_model_ignores_labels() -> None:
    model = _model(32, 16)
    x = torch.rand(2, 32, 16)
    torch.testing.assert_close(model.encode(x, [5, 7])[0], model.encode(x)[0])


def test_wrong_shapes_are_refused() -> None:
    model = _model(32, 16)
    with pytest.raises(ValueError, match=r"reads \(batch, 32, 16\)"):
        model.encode(torch.rand(2, 16, 32))
    with pytest.raises(ValueError, match=r"expected \(B, 3\)"):
        model.decode(torch.zeros(2, 4))


def test_sample_shape_seed_and_temperature() -> None:
    model = _model(40, 20, n_labels=2)
    s1 = model.sample(5, labels=1, generator=torch.Generator().manual_seed(3))
    s2 = model.sample(5, labels=[1] * 5, generator=torch.Generator().manual_seed(3))
    assert s1.shape == (5, 40, 20)
    torch.testing.assert_close(s1, s2)
    assert not torch.allclose(s1[0], s1[1])
    flat = model.sample(3, labels=0, temperature=0.0)  # every code is the origin
    torch.testing.assert_close(flat[0], flat[2])
    torch.testing.assert_close(flat[:1], model.decode(torch.zeros(1, 3), [0]))
    with pytest.raises(ValueError, match="n=0"):
        model.sample(0, labels=0)


@pytest.mark.slow
@pytest.mark.parametrize("train_mode", [False, True])
def test_batched_equals_one_by_one(train_mode: bool) -> None:
    """GroupNorm keeps every clip independent of its batch-mates (in training too)."""
    model = _model(48, 24, n_labels=3)
    model.train(train_mode)
    x, y = torch.rand(4, 48, 24), torch.tensor([0, 2, 1, 2])
    with torch.no_grad():
        mu, logvar = model.encode(x, y)
        out = model.decode(mu, y)
        for i in range(4):
            mu_i, logvar_i = model.encode(x[i : i + 1], y[i : i + 1])
            torch.testing.assert_close(mu_i, mu[i : i + 1], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(logvar_i, logvar[i : i + 1], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(
                model.decode(mu[i : i + 1], y[i : i + 1]), out[i : i + 1], atol=1e-5, rtol=1e-4
            )


def test_eval_forward_is_deterministic_train_forward_samples() -> None:
    model = _model(32, 16)
    x = torch.rand(2, 32, 16)
    torch.testing.assert_close(model(x)[0], model(x)[0])
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])


@pytest.mark.slow
def test_training_steps_lower_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = ConvVAE(ModelConfig(64, 32, channels=(8, 16), latent_dim=4))
    x = torch.rand(8, 64, 32) ** 3  # spectrogram-like: mostly dark
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            recon, mu, logvar = model(x)
            return vae_loss(recon, x, mu, logvar, LossSettings(beta=1.0)).loss.item()

    before = eval_loss()
    for _ in range(15):
        model.train()
        recon, mu, logvar = model(x)
        loss = vae_loss(recon, x, mu, logvar, LossSettings(beta=1.0)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.8 * before


def test_vae_loss_values() -> None:
    x = torch.rand(3, 10, 4)
    zero, one = torch.zeros(3, 5), torch.ones(3, 5)
    out = vae_loss(x, x, zero, zero, LossSettings(beta=1.0))
    assert out.loss.item() == out.recon.item() == out.kl.item() == 0.0
    # recon: sum of squares per clip, mean over clips; KL: 0.5 * mu^2 summed over dims.
    out = vae_loss(x + 0.5, x, one, zero, LossSettings(beta=2.0))
    assert out.recon.item() == pytest.approx(0.25 * 40)
    assert out.kl.item() == pytest.approx(0.5 * 5)
    assert out.loss.item() == pytest.approx(10 + 2.0 * 2.5)
    # Free bits floor each dim's KL in the loss; the reported KL stays the true one.
    fb = vae_loss(x, x, zero, zero, LossSettings(beta=2.0, free_bits=0.25))
    assert fb.kl.item() == 0.0 and fb.loss.item() == pytest.approx(2.0 * 0.25 * 5)
    above = vae_loss(x, x, one, zero, LossSettings(beta=1.0, free_bits=0.25))  # 0.5 per dim > floor
    assert above.loss.item() == pytest.approx(2.5)


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
@pytest.mark.parametrize("res_blocks", [0, 2])
def test_every_decoder_keeps_the_shape_and_learns(decoder: str, res_blocks: int) -> None:
    """Each decoder kind, with and without residual blocks, maps codes to (B, bins, frames)
    in [0, 1], and a few steps lower the loss on a fixed batch."""
    torch.manual_seed(0)
    model = ConvVAE(
        ModelConfig(40, 24, channels=TINY, latent_dim=3, decoder=decoder, res_blocks=res_blocks)
    )
    x = torch.rand(4, 40, 24)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        recon, mu, logvar = model(x, noise=torch.zeros(4, 3))
        assert recon.shape == x.shape and 0 <= float(recon.min()) <= float(recon.max()) <= 1
        loss = vae_loss(recon, x, mu, logvar, LossSettings(beta=0.1)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.85 * losses[0]


def test_the_first_versions_weights_still_load() -> None:
    """A transpose decoder without residual blocks keeps the parameter names of version 1,
    so checkpoints trained before these options existed load unchanged."""
    model = ConvVAE(ModelConfig(16, 16, channels=TINY, latent_dim=3))
    names = [k for k in model.state_dict() if k.startswith("decoder.")]
    assert names == [
        "decoder.0.0.weight", "decoder.0.0.bias", "decoder.0.1.weight", "decoder.0.1.bias",
        "decoder.1.weight", "decoder.1.bias",
    ]  # fmt: skip
    assert ModelConfig.from_dict({"n_bins": 16, "n_frames": 16}).decoder == "transpose"


def test_laplace_likelihood_sums_absolute_errors() -> None:
    x, recon = torch.zeros(2, 3, 4), torch.full((2, 3, 4), 0.5)
    mu = logvar = torch.zeros(2, 2)
    assert float(vae_loss(recon, x, mu, logvar, LossSettings(likelihood="laplace")).recon) == 6.0
    assert float(vae_loss(recon, x, mu, logvar, LossSettings()).recon) == 3.0


def test_inert_parameters_change_no_output() -> None:
    """The biases the GroupNorm cancels: moving them leaves the output as it was, so weight
    comparisons between runs may leave them out."""
    torch.manual_seed(0)
    model = ConvVAE(ModelConfig(64, 32, channels=(8, 16), latent_dim=4)).eval()
    inert = inert_parameters(model)
    assert inert and inert <= set(dict(model.named_parameters()))
    x = torch.rand(2, 64, 32)
    before = model(x)[0]  # eval: the mean code, no noise
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in inert:
                p.add_(1.0)
    assert torch.allclose(model(x)[0], before, atol=1e-4)
