"""The app's plotly figures: shapes, shared colour scales, ids on every map point."""

import re

import numpy as np

from ui import figures
from vae.audio.features import FeatureConfig

CFG = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)


def test_spectrograms_share_one_level_scale_and_the_difference_is_signed():
    a, b = np.zeros((128, 33), np.float32), np.full((128, 33), 0.25, np.float32)
    fig = figures.spectrograms([("a", a), ("b", b)], CFG, difference=True)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert [t.coloraxis for t in heatmaps] == ["coloraxis", "coloraxis", "coloraxis2"]
    np.testing.assert_allclose(heatmaps[2].z, a - b)
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
    assert heatmaps[0].y[-1] == 127 * 8000 / 256  # Hz of the top bin
    assert heatmaps[0].x[-1] == 32 * 128 / 8000  # seconds of the last frame


def test_no_colour_looks_like_a_streamlit_theme_placeholder():
    # Streamlit's frontend replaces "#000001".."#0000NN" with theme colours: silence at 0
    # would draw in the theme's pink instead of Magma's black.
    fig = figures.spectrograms([("a", np.zeros((4, 4), np.float32))], CFG)
    colours = [c for _, c in fig.layout.coloraxis.colorscale]
    assert colours[0] == "rgb(0, 0, 4)"
    assert not any(re.fullmatch(r"#0000[0-9a-fA-F]{2}", c) for c in colours)


def test_latent_map_puts_every_clip_id_in_customdata_once():
    ids = [f"c{i}" for i in range(9)]
    fig = figures.latent_map(
        np.random.rand(9, 2),
        ids,
        list("aaabbbccc"),
        "label",
        selected=["c4"],
        extra=[("yours", np.zeros(2))],
        path=np.random.rand(5, 2),
    )
    groups = [t for t in fig.data if t.name in ("a", "b", "c")]
    assert sorted(i for t in groups for i in t.customdata) == sorted(ids)
    assert [t.name for t in fig.data][3:] == ["selected", "path", "yours"]
    assert list(fig.data[3].customdata) == ["c4"]


def test_loss_curves_draw_train_and_validation_per_term():
    records = [
        {"event": "step", "epoch": 1, "batch": 5, "loss": 9.0, "recon": 8.0, "kl": 1.0},
        {
            "event": "epoch",
            "epoch": 1,
            "train_loss": 5.0,
            "val_loss": 6.0,
            "train_recon": 4.0,
            "val_recon": 5.0,
            "train_kl": 1.0,
            "val_kl": 1.0,
        },
        {
            "event": "epoch",
            "epoch": 2,
            "train_loss": 3.0,
            "val_loss": None,
            "train_recon": 2.0,
            "val_recon": None,
            "train_kl": 1.0,
            "val_kl": None,
        },
    ]
    fig = figures.loss_curves(records)
    val = [t for t in fig.data if t.name == "val"]
    assert len(val) == 3 and list(val[0].x) == [1] and list(val[0].y) == [6.0]
    train = [t for t in fig.data if t.name == "train"]
    assert list(train[1].y) == [4.0, 2.0]
