"""The app's plotly figures: shapes, shared colour scales, ids on every map point."""

import re

import numpy as np
import pytest

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


def test_spectrogram_panels_sit_side_by_side_titled_on_one_frequency_axis():
    # Built without make_subplots (issue 26): the same panels, titles and shared axes.
    a, b = np.zeros((128, 33), np.float32), np.ones((128, 33), np.float32)
    fig = figures.spectrograms([("<b>a</b>", a), ("b", b)], CFG, difference=True, height=300)
    layout = fig.layout
    domains = [layout[f"xaxis{n}"].domain for n in ("", "2", "3")]
    assert domains[0][0] == 0 and abs(domains[2][1] - 1) < 1e-9
    widths = [right - left for left, right in domains]
    assert max(widths) - min(widths) < 1e-9 and abs(widths[0] - 0.94 / 3) < 1e-9
    assert all(abs(domains[i + 1][0] - domains[i][1] - 0.03) < 1e-9 for i in range(2))
    assert [t.xaxis for t in fig.data] == ["x", "x2", "x3"]
    assert [t.yaxis for t in fig.data] == ["y", "y2", "y3"]
    assert [layout[f"xaxis{n}"].anchor for n in ("", "2", "3")] == ["y", "y2", "y3"]
    assert [layout[f"xaxis{n}"].title.text for n in ("", "2", "3")] == ["s"] * 3
    assert layout.yaxis.title.text == "Hz" and layout.yaxis.showticklabels is None
    for n in ("2", "3"):  # one frequency axis: the others follow it, unlabelled
        assert layout[f"yaxis{n}"].matches == "y" and layout[f"yaxis{n}"].showticklabels is False
    titles = [(note.text, note.x, note.y, note.yanchor) for note in layout.annotations]
    centres = [(left + right) / 2 for left, right in domains]
    assert [t[0] for t in titles] == ["&lt;b&gt;a&lt;/b&gt;", "b", "difference (1st - 2nd)"]
    assert all(abs(t[1] - c) < 1e-9 for t, c in zip(titles, centres, strict=True))
    assert all(t[2:] == (1, "bottom") for t in titles)
    assert all(note.xref == note.yref == "paper" and note.font.size == 16 for note in titles
               and layout.annotations)  # fmt: skip
    scale = layout.coloraxis2
    assert (scale.cmin, scale.cmid, scale.cmax, scale.colorbar.x) == (-1, 0, 1, 1.08)
    assert scale.colorscale[0] == (0, "rgb(103,0,31)")  # red low: too loud is red
    assert scale.colorscale[-1] == (1, "rgb(5,48,97)")
    assert layout.height == 300 and layout.meta == {"scale": "0 = -80 dB, 1 = full scale"}
    assert fig.data[0].hovertemplate.startswith("%{x:.2f} s, %{y:.0f}")


def test_one_spectrogram_fills_the_width():
    fig = figures.spectrograms([("a", np.zeros((128, 33), np.float32))], CFG)
    assert fig.layout.xaxis.domain == (0, 1) and len(fig.data) == 1
    assert fig.layout.annotations[0].x == 0.5 and "xaxis2" not in fig.to_dict()["layout"]


def _map(coords, ids, **kwargs):
    return figures.latent_map(coords, ids, [i[0] for i in ids], "label", **kwargs)


def test_latent_map_draws_each_groups_clip_points():
    rng = np.random.default_rng(0)
    coords, ids = rng.normal(size=(30, 2)), [f"{i % 3}_<i>{i}</i>" for i in range(30)]
    first = _map(coords, ids, path=rng.normal(size=(4, 2)))
    again = _map(coords, ids, extra=[("mix", np.zeros(2))])
    assert [t.name for t in first.data] == ["0", "1", "2", "path"]
    assert [t.name for t in again.data] == ["0", "1", "2", "mix"]
    first.data[0].x = [9.0] * 10  # a figure's own copy: the next figure is untouched
    assert _map(coords, ids).data[0].x[0] != 9
    zero = again.data[0]
    np.testing.assert_allclose(zero.x, coords[::3, 0].astype(np.float32))
    assert list(zero.customdata) == ids[::3] and zero.text[1] == "0_&lt;i&gt;3&lt;/i&gt;"
    assert zero.marker.size == 7 and zero.marker.color == figures.COLOURS[0]
    assert zero.hovertemplate == "%{text}<extra>0</extra>"
    moved = _map(coords + 1, ids)  # another projection: its own points
    np.testing.assert_allclose(moved.data[0].x, (coords[::3, 0] + 1).astype(np.float32))


def test_latent_map_layout_stays_validated_for_the_pages():
    fig = _map(np.zeros((3, 2)), ["a1", "a2", "b1"], height=420)
    fig.update_layout(xaxis_title="PC1", yaxis_title="PC2")  # as Explore and Interpolate do
    layout = fig.to_dict()["layout"]
    assert layout["xaxis"]["title"] == {"text": "PC1"}  # plotly.js 3 draws no bare string
    assert layout["legend"]["title"] == {"text": "label"} and layout["height"] == 420
    assert (layout["dragmode"], layout["clickmode"]) == ("pan", "event+select")
    assert layout["template"]["layout"]  # the default template, as any figure
    with pytest.raises(ValueError):
        fig.update_layout(height=3)
