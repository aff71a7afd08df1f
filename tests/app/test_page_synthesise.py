"""Synthesise page (AppTest): sliders, random draws and labels redraw the sound at once."""

import shutil

import numpy as np
import pytest

from tests.apptest import audio_urls, chart_traces, open_page
from vae.synthesis.inference import Synthesiser


def spectrogram(at) -> np.ndarray:
    return chart_traces(at, "synth-spectrogram")[0]["z"]


@pytest.fixture
def at(studio_page):
    return studio_page("synthesise")


@pytest.mark.slow
def test_opens_on_the_centre_with_one_slider_per_direction(at):
    # the demo checkpoint has a 4-d latent: 4 main directions, plus the temperature slider
    keys = [s.key for s in at.slider]
    assert keys == ["synth-temperature"] + [f"synth-dir-{i}" for i in range(4)]
    assert all(s.value == 0.0 for s in at.slider[1:])
    assert spectrogram(at).shape == (128, 33)
    assert len(audio_urls(at)) == 1
    assert at.main.get("download_button")[0].proto.label == "Download WAV"


def test_a_slider_move_redraws_spectrogram_and_sound(at):
    before, sound = spectrogram(at), audio_urls(at)
    at.slider(key="synth-dir-0").set_value(2.5).run()
    assert not at.exception
    after = spectrogram(at)
    assert np.abs(after - before).max() > 0.01
    assert audio_urls(at) != sound
    at.slider(key="synth-dir-0").set_value(0.0).run()
    np.testing.assert_allclose(spectrogram(at), before, atol=1e-6)  # back where it was


def test_random_sample_moves_the_sliders_and_repeats_for_the_same_draw(at):
    before = spectrogram(at)
    at.button(key="synth-random").click().run()
    moved = [s.value for s in at.slider[1:]]
    assert any(v != 0.0 for v in moved)
    assert np.abs(spectrogram(at) - before).max() > 0.01
    first = spectrogram(at)
    at.button(key="synth-reset").click().run()
    assert all(s.value == 0.0 for s in at.slider[1:])
    np.testing.assert_allclose(spectrogram(at), before, atol=1e-6)
    at.session_state["synth-draws"] = 0  # the same draw again gives the same sound
    at.button(key="synth-random").click().run()
    np.testing.assert_allclose(spectrogram(at), first, atol=1e-6)


def test_label_choice_and_raw_dimensions(at):
    assert at.selectbox(key="synth-label").options == [
        "falling",
        "noise",
        "pulses",
        "rising",
        "tone",
    ]
    noise = spectrogram(at)
    at.selectbox(key="synth-label").set_value("tone").run()
    assert np.abs(spectrogram(at) - noise).max() > 0.01
    at.radio(key="synth-mode").set_value("raw dimensions").run()
    assert [s.key for s in at.slider][1:] == [f"synth-dim-{i}" for i in range(4)]
    at.slider(key="synth-dim-3").set_value(-2.0).run()
    assert not at.exception
    shown = [c.value for c in at.main.caption if c.value.startswith("code: ")]
    assert shown == ["code: +0.00, +0.00, +0.00, -2.00"]  # the code under the player


def test_works_from_the_prior_when_the_checkpoint_has_no_latents(
    studio_root, tmp_path, monkeypatch
):
    shutil.copytree(studio_root / "checkpoints", tmp_path / "checkpoints")
    (tmp_path / "checkpoints" / "demo" / "latents.npz").unlink()
    monkeypatch.chdir(tmp_path)
    at = open_page("synthesise")
    assert not at.exception
    assert [s.label for s in at.slider][1] == "direction 1 (spread 1.00)"
    at.slider(key="synth-dir-1").set_value(1.0).run()
    assert spectrogram(at).shape == (128, 33)


def test_random_sample_draws_from_the_learned_prior_and_says_so(at):

    assert "learned prior" in " ".join(c.value for c in at.caption)
    at.button(key="synth-random").click().run()
    synth = Synthesiser.load("checkpoints/demo")  # the page's workspace is the cwd
    assert synth.prior is not None
    label = at.selectbox(key="synth-label").value
    drawn = synth.sample_codes(1, label, temperature=1.0, seed=1)[0].numpy()
    raw = [at.session_state[f"synth-dim-{i}"] for i in range(synth.latent_dim)]
    np.testing.assert_allclose(raw, np.clip(drawn, -3, 3).round(2), atol=1e-6)
