"""Explore page (AppTest on the studio_root workspace) and the per-clip metrics it shows."""

from __future__ import annotations

import functools
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from streamlit.testing.v1 import AppTest

from tests.apptest import (
    chart_traces,
    clip_coords,
    clip_traces,
    forget_training_data,
    map_click_states,
    open_page,
)
from vae.audio.features import FeatureConfig
from vae.audio.io import crossfade_concat
from vae.audio.metrics import clip_metrics
from vae.model.checkpoints import read_latents
from vae.synthesis.inference import Synthesiser
from vae.synthesis.projection import project

SELECTED = "studio-selected"
ROUTE, ROUTE_MORPH = "explore-route", "explore-route-wav"


def _map(at) -> list[dict]:
    """The latent map's traces (plotly JSON, typed arrays decoded)."""
    return chart_traces(at, "explore-map")


def _values(value) -> np.ndarray:
    """A plotly array as numpy (chart_traces has decoded typed arrays already)."""
    return np.asarray(value)


def _heatmap_counts(at) -> list[int]:
    """Heatmaps in each spectrogram figure on the page (the map excluded)."""
    figs = [
        json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart") if c.key != "explore-map"
    ]
    return [sum(t["type"] == "heatmap" for t in fig) for fig in figs]


def _metric_values(at) -> dict[str, float]:
    return {m.label: float(m.value.split()[0]) for m in at.metric}


@pytest.fixture
def explore_at(studio_page):
    """The Explore page opened in the demo workspace (read only)."""
    return functools.partial(studio_page, "explore")


@pytest.fixture(scope="module")
def demo_ids(studio_root) -> list[str]:
    return [str(i) for i in read_latents(studio_root / "checkpoints" / "demo")["ids"]]


@pytest.mark.slow
def test_map_draws_every_clip_and_picking_one_plays_original_and_reconstruction(
    explore_at, demo_ids
):
    at = explore_at()
    traces = _map(at)
    assert sorted(clip_coords(traces)) == sorted(demo_ids) and len(demo_ids) == 30
    assert len(clip_traces(traces)) == 3  # a conditional model: coloured by its 3 speakers
    assert all(math.isfinite(v) for xy in clip_coords(traces).values() for v in xy)
    assert len(at.get("audio")) == 0 and not at.metric  # nothing picked yet

    pick = demo_ids[7]
    at.selectbox(key="explore-clip").set_value(pick).run()
    assert not at.exception
    assert at.session_state[SELECTED] == [pick]  # Interpolate reads it from here
    assert len(at.get("audio")) == 2
    assert _heatmap_counts(at) == [3]  # original, reconstruction, difference
    values = _metric_values(at)
    assert set(values) == {"Spectral convergence", "Log-spectral distance"}
    assert all(math.isfinite(v) and v > 0 for v in values.values())
    ring = [t for t in _map(at) if t["name"] == "selected"]
    assert ring and _values(ring[0]["customdata"]).tolist() == [pick]


@pytest.mark.slow
def test_a_clip_chosen_on_the_map_is_shown(explore_at, demo_ids):
    """AppTest cannot click plotly: seed the selection the map callback writes."""
    at = explore_at(**{SELECTED: [demo_ids[0], demo_ids[3]]})
    assert at.selectbox(key="explore-clip").value == demo_ids[3]  # the latest pick
    assert demo_ids[3] in at.subheader[0].value
    assert len(at.get("audio")) == 2 and _heatmap_counts(at) == [3]
    assert any("Interpolate" in c.value and demo_ids[0] in c.value for c in at.caption)


def _click(at, customdata) -> None:
    """Send a map click as the browser does: the chart's selection JSON as its widget value.

    AppTest has no API for plotly selections, so this adds one widget state by hand
    (private ``_tree`` / ``_run``): it is the only way to run the page's on_select callback.
    """
    states = map_click_states(at, customdata)
    at._run(states)
    assert not at.exception


@pytest.mark.slow
def test_a_click_on_the_map_selects_that_clip(explore_at, demo_ids):
    at = explore_at()
    _click(at, demo_ids[11])
    assert at.session_state[SELECTED] == [demo_ids[11]]
    assert at.selectbox(key="explore-clip").value == demo_ids[11]  # the picker follows
    assert len(at.get("audio")) == 2
    _click(at, [demo_ids[2]])  # customdata may come wrapped in a list
    assert at.session_state[SELECTED] == [demo_ids[11], demo_ids[2]]
    _click(at, "yours: my tone")  # the upload's star is not a dataset clip
    assert at.session_state[SELECTED] == [demo_ids[11], demo_ids[2]]


@pytest.mark.slow
def test_tsne_moves_the_points(explore_at, demo_ids):
    at = explore_at()
    pca = clip_coords(_map(at))
    at.radio(key="explore-method").set_value("tsne").run()
    assert not at.exception
    tsne = clip_coords(_map(at))
    assert sorted(tsne) == sorted(demo_ids)
    moved = [np.hypot(pca[c][0] - tsne[c][0], pca[c][1] - tsne[c][1]) for c in demo_ids]
    assert np.median(moved) > 1e-3
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert layout["xaxis"]["title"]["text"] == "t-SNE 1"


def test_colour_by_speaker_uses_the_speakers_in_the_file_names(studio_root, monkeypatch):
    """The demo set names its 'voices' in its file names ({class}_{speaker}_{i})."""
    monkeypatch.chdir(studio_root)
    at = open_page("explore")
    assert at.radio(key="explore-colour").options == ["label", "speaker"]
    at.radio(key="explore-colour").set_value("speaker").run()
    assert not at.exception
    groups = clip_traces(_map(at))
    assert sorted(t["name"] for t in groups) == ["ann", "bo", "cy"]
    assert sum(len(_values(t["customdata"])) for t in groups) == 30


@pytest.mark.slow
def test_a_conditional_model_is_coloured_by_speaker_and_says_why_not_by_label(
    studio_root, tmp_path, monkeypatch
):
    """The demo checkpoint is conditional: the decoder is given the label, so the code
    leaves it out and coloured by label the map is one even cloud. An unconditional
    model of the same clips still opens coloured by label, with no such note."""
    from vae.training.train import train
    from vae.training.train_config import TrainConfig

    monkeypatch.chdir(studio_root)
    at = open_page("explore")
    assert at.radio(key="explore-colour").value == "speaker"
    assert sorted(t["name"] for t in clip_traces(_map(at))) == ["ann", "bo", "cy"]
    assert not any("one even cloud" in c.value for c in at.caption)
    at.radio(key="explore-colour").set_value("label").run()
    assert not at.exception
    assert len(clip_traces(_map(at))) == 5
    note = [c.value for c in at.caption if "one even cloud" in c.value]
    assert note and note[0].startswith("A conditional model is given the label")
    assert "by speaker it shows what the code holds" in note[0]

    root = tmp_path / "studio"  # a copy: the shared workspace is read only
    shutil.copytree(studio_root, root)
    monkeypatch.chdir(root)
    plain = Path("checkpoints") / "plain"
    train(
        Path("data") / "demo",
        plain,
        train_config=TrainConfig(epochs=1, batch_size=8, log_every=0, device="cpu", threads=1),
        model_overrides={"channels": (8, 16), "latent_dim": 4},
    )
    at = open_page("explore", **{"studio-checkpoint": str(plain)})
    assert not at.exception, at.exception
    assert at.radio(key="explore-colour").value == "label"
    assert len(clip_traces(_map(at))) == 5
    assert not any("one even cloud" in c.value for c in at.caption)


@pytest.mark.slow
def test_an_uploaded_clip_is_encoded_and_placed_on_the_map(explore_at, write_tone, tmp_path):
    at = explore_at()
    wav = write_tone(tmp_path / "my tone.wav", seconds=0.6, freq=330.0).read_bytes()
    label = at.selectbox(key="explore-upload-label").options[2]
    at.selectbox(key="explore-upload-label").set_value(label)
    at.file_uploader(key="explore-upload").set_value(("my tone.wav", wav, "audio/wav")).run()
    assert not at.exception and not at.error
    star = [t for t in _map(at) if t["name"].startswith("yours")]
    assert len(star) == 1 and star[0]["marker"]["symbol"] == "star"
    x, y = _values(star[0]["x"])[0], _values(star[0]["y"])[0]
    clips = np.array(list(clip_coords(_map(at)).values()))
    assert clips[:, 0].min() - 10 < x < clips[:, 0].max() + 10  # on the map, not far off
    assert clips[:, 1].min() - 10 < y < clips[:, 1].max() + 10
    assert len(at.get("audio")) == 2  # the upload and its reconstruction
    assert _heatmap_counts(at) == [3]
    assert "my tone.wav" in at.subheader[-1].value


@pytest.mark.slow
def test_timed_work_returns_its_value_raises_its_error_and_leaves_no_bar():
    """The bar t-SNE fills while it runs (ui.widgets.timed): the work's value or error comes
    back to the script thread, and the bar is gone once it is done."""

    def script() -> None:
        import time

        import streamlit as st

        from ui.widgets import timed

        st.write(f"got {timed(lambda: (time.sleep(1.2), 42)[1], 'slow:', 2.0)}")
        try:
            timed(lambda: 1 / 0, "failing:", 1.0)
        except ZeroDivisionError:
            st.write("raised here")

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception
    assert [m.value for m in at.markdown] == ["got 42", "raised here"]
    assert not at.get("progress")


def test_an_uploads_label_comes_from_its_name_until_the_user_changes_it(
    explore_at, write_tone, tmp_path
):
    """Issue 15 item 6: an upload named by a label rule ({label}_{speaker}_{i}) is encoded
    with that label, not the box's first one, and the page says which label it used."""
    at = explore_at()
    box = at.selectbox(key="explore-upload-label")
    assert box.value == box.options[0] == "falling"
    wav = write_tone(tmp_path / "rising_me_1.wav", seconds=0.6, freq=330.0).read_bytes()
    at.file_uploader(key="explore-upload").set_value(("rising_me_1.wav", wav, "audio/wav")).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="explore-upload-label").value == "rising"
    captions = [c.value for c in at.caption]
    said = "Encoded and reconstructed as label 'rising' (read from the name rising_me_1.wav; "
    assert said + "change it above)." in captions
    at.selectbox(key="explore-upload-label").set_value("tone").run()  # the user's word wins
    assert at.selectbox(key="explore-upload-label").value == "tone"
    assert any("as label 'tone'. The model is conditional" in c.value for c in at.caption)


def test_a_recording_on_a_conditional_model_says_what_its_label_is_for(explore_at, recording_wav):
    """Issue 24, item 10: a recording has no name to read a label from; the page says what
    the label is for and asks for it (no bare "(the box above; change it above)")."""
    at = explore_at()
    assert "encodes a clip together with its label" in at.selectbox(key="explore-upload-label").help
    _recorded(at, recording_wav)
    said = [c.value for c in at.caption if "Encoded and reconstructed" in c.value]
    assert said == [
        "Encoded and reconstructed as label 'falling'. The model is conditional: it encodes a "
        "clip together with its label; choose which label this recording is in the box above "
        "(until you do, it is 'falling')."
    ]
    at.selectbox(key="explore-upload-label").set_value("tone").run()
    assert any("as label 'tone'." in c.value for c in at.caption)


def test_an_unreadable_upload_says_what_to_upload(explore_at):
    at = explore_at()
    at.file_uploader(key="explore-upload").set_value(("notes.wav", b"not audio", "audio/wav"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    assert "notes.wav" in at.error[0].value and "upload a WAV" in at.error[0].value
    assert "/tmp" not in at.error[0].value
    assert len(clip_traces(_map(at))) == 3  # the map still draws


def test_without_the_dataset_the_map_draws_and_reconstructions_play(
    studio_root, tmp_path, monkeypatch, demo_ids
):
    root = tmp_path / "studio"
    shutil.copytree(studio_root / "checkpoints", root / "checkpoints")
    forget_training_data(root / "checkpoints" / "demo")
    monkeypatch.chdir(root)
    at = open_page("explore", **{SELECTED: [demo_ids[5]]})
    assert not at.exception
    assert sorted(clip_coords(_map(at))) == sorted(demo_ids)
    assert len(at.get("audio")) == 1  # the reconstruction, decoded from the stored mean
    assert any("preprocess the dataset to hear originals" in c.value for c in at.caption)
    assert _heatmap_counts(at) == [1]
    assert at.radio(key="explore-colour").options == ["label"]
    assert any(c.value.endswith("the map is one even cloud.") for c in at.caption)  # no speakers


def test_a_missing_latents_file_is_an_error_with_the_fix(studio_root, tmp_path, monkeypatch):
    root = tmp_path / "studio"
    shutil.copytree(studio_root / "checkpoints", root / "checkpoints")
    (root / "checkpoints" / "demo" / "latents.npz").unlink()
    monkeypatch.chdir(root)
    at = open_page("explore")
    assert not at.exception
    assert "latents.npz: missing" in at.error[0].value and "retrain" in at.error[0].value


def test_clip_metrics_are_zero_for_a_perfect_copy_and_grow_with_error():
    cfg = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)
    feats = torch.rand(*cfg.shape)  # (bins, frames)
    same = clip_metrics(feats, feats, cfg)
    assert same == {"spectral_convergence": 0.0, "log_spectral_distance_db": 0.0}
    near = clip_metrics(feats, (feats - 0.02).clamp(0, 1), cfg)
    far = clip_metrics(feats, (feats - 0.2).clamp(0, 1), cfg)
    assert 0 < near["spectral_convergence"] < far["spectral_convergence"]
    assert 0 < near["log_spectral_distance_db"] < far["log_spectral_distance_db"]
    wave = torch.randn(cfg.clip_samples).numpy()
    heard = clip_metrics(feats, feats, cfg, est_wave=wave)  # judged on the audio instead
    assert heard["spectral_convergence"] > 0.1
    with pytest.raises(ValueError, match="same FeatureConfig"):
        clip_metrics(feats, feats[:, :10], cfg)


def _recorded(at, recording_wav, key: str = "explore-record"):
    """Hand the page a recording as st.audio_input does: WAV bytes named by the browser."""
    data = recording_wav.read_bytes()
    at.audio_input(key=key).set_value(("2026-11-30T02-20_audio.wav", data, "audio/wav")).run()
    assert not at.exception and not at.error


@pytest.mark.slow
def test_a_recording_lands_on_the_map_is_reconstructed_and_morphs_on_interpolate(
    explore_at, studio_root, recording_wav
):
    at = explore_at()
    assert at.audio_input(key="explore-record").sample_rate is None  # the browser's own rate
    _recorded(at, recording_wav)
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    first = synth.label_names[0]  # the label picker's default
    clip = synth.clip_from_file(recording_wav, first)  # 48 kHz resampled to the model's 8 kHz
    z = synth.encode(clip.features[None], [clip.label])  # (1, D)
    means = read_latents(studio_root / "checkpoints" / "demo")["means"]
    expected = project(means, "pca", seed=0).transform(z.numpy())[0]

    star = [t for t in _map(at) if t["name"] == "yours: recording"]
    assert len(star) == 1 and star[0]["marker"]["symbol"] == "star"
    np.testing.assert_allclose([star[0]["x"][0], star[0]["y"][0]], expected, atol=1e-4)
    assert at.subheader[-1].value == "Your recording"
    assert any(f"reconstructed as label {first!r}" in c.value for c in at.caption)
    assert len(at.get("audio")) == 2  # the recording and its reconstruction
    original, recon, _ = (t["z"] for t in chart_traces(at, "explore-spec-recording"))
    np.testing.assert_allclose(original, clip.features.numpy(), atol=1e-5)
    np.testing.assert_allclose(recon, synth.decode(z, [clip.label])[0].numpy(), atol=1e-4)

    at.button(key="explore-recording-to-a").click().run()  # "Morph from this"
    assert not at.exception
    assert at.title[0].value == "Interpolate"
    assert at.radio(key="interp-a-source").value == "from Explore"
    # AppTest asks for the page it was last switched to on every run: follow the script
    at.switch_page("app_pages/interpolate.py")
    a_panel = chart_traces(at, "interp-spectrograms")[0]["z"]
    np.testing.assert_allclose(a_panel, clip.features.numpy(), atol=1e-5)
    at.button(key="interp-morph").click().run()
    assert not at.exception
    name, data, _ = at.session_state["interp-morph-wav"]
    assert name.startswith("morph-recording-to-")
    assert len(sf.read(io.BytesIO(data))[0]) > 0


def _route_length(points: int, steps: int, clip_samples: int = 4096, sr: int = 8000) -> int:
    """Samples in a route morph: (K - 1) * (steps - 1) + 1 clips joined by crossfade_concat
    with 50 ms fades (morph_path's)."""
    clips = (points - 1) * (steps - 1) + 1
    return len(crossfade_concat([np.zeros(clip_samples, np.float32)] * clips, int(0.05 * sr)))


@pytest.mark.slow
def test_clicks_build_a_route_whose_morph_downloads_as_one_wav(explore_at, demo_ids):
    at = explore_at()
    picks = [demo_ids[1], demo_ids[14], demo_ids[27]]
    for pick in picks:
        _click(at, [pick])
    assert at.session_state[ROUTE] == picks
    coords = clip_coords(_map(at))
    route = [t for t in _map(at) if t["name"] == "route"]
    assert len(route) == 1 and "lines" in route[0]["mode"]
    np.testing.assert_allclose(
        np.stack([route[0]["x"], route[0]["y"]], axis=1), [coords[p] for p in picks], atol=1e-5
    )
    assert list(route[0]["text"]) == ["1", "2", "3"]
    assert any(c.value.startswith("Route: 1. " + picks[0]) for c in at.caption)

    at.slider(key="explore-route-steps").set_value(3).run()
    at.button(key="explore-route-morph").click().run()
    assert not at.exception and not at.error
    (made_for, data, seconds) = at.session_state[ROUTE_MORPH]
    wave, sr = sf.read(io.BytesIO(data))
    assert made_for == (tuple(picks), 3) and sr == 8000 and wave.ndim == 1
    assert len(wave) == _route_length(3, 3) == 5 * 4096 - 4 * 400
    assert np.abs(wave).max() > 0.1
    assert seconds == pytest.approx(len(wave) / 8000)
    assert at.main.get("download_button")[0].proto.label.startswith("Download route-morph.wav")
    assert len(at.get("audio")) == 3  # the route morph, and the last pick and its reconstruction

    at.button(key="explore-route-pop").click().run()
    assert at.session_state[ROUTE] == picks[:2]
    assert not at.main.get("download_button")  # the morph was of the longer route
    at.button(key="explore-route-clear").click().run()
    assert at.session_state[ROUTE] == []
    assert not [t for t in _map(at) if t["name"] == "route"]


@pytest.mark.slow
def test_a_recording_can_be_a_point_of_the_route(explore_at, demo_ids, recording_wav):
    at = explore_at()
    _click(at, "yours: recording")  # no recording yet: not a route point
    assert at.session_state[ROUTE] == []
    _recorded(at, recording_wav)
    _click(at, demo_ids[4])
    _click(at, "yours: recording")
    assert at.session_state[ROUTE] == [demo_ids[4], "yours: recording"]
    at.button(key="explore-route-morph").click().run()  # 4 steps a leg by default
    assert not at.exception and not at.error
    wave, _ = sf.read(io.BytesIO(at.session_state[ROUTE_MORPH][1]))
    assert len(wave) == _route_length(2, 4)
    at.audio_input(key="explore-record").set_value(None).run()  # the recording is gone...
    assert at.session_state[ROUTE] == [demo_ids[4]]  # ...and so is its route point
