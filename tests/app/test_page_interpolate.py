"""Interpolate page (AppTest): pick A and B, drag α, see the path, download the morph."""

import io
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.apptest import audio_urls, chart_traces, forget_training_data, open_page
from vae.data.dataset import load_dataset
from vae.model.checkpoints import read_latents
from vae.synthesis.inference import Synthesiser


def panels(at) -> list[np.ndarray]:
    """The A | mix | B spectrograms (bins, frames) on the page."""
    return [t["z"] for t in chart_traces(at, "interp-spectrograms")]


@pytest.fixture
def at(studio_page):
    return studio_page("interpolate")


def test_opens_with_two_dataset_clips_and_their_mix(at):
    a, b = at.selectbox(key="interp-a-clip").value, at.selectbox(key="interp-b-clip").value
    assert a != b
    spectra = panels(at)
    assert [s.shape for s in spectra] == [(128, 33)] * 3
    assert len(audio_urls(at)) == 3  # A, mix, B
    assert at.slider(key="interp-alpha").value == 0.5


def test_dragging_alpha_moves_the_mix_from_a_to_b(studio_root, at):
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    ds = load_dataset(studio_root / "data" / "demo")
    ends = [at.selectbox(key=f"interp-{side}-clip").value for side in "ab"]
    a, b = (synth.clip_from_dataset(ds, clip_id) for clip_id in ends)
    recon_a = synth.reconstruct(a.features[None], [a.label])[0].numpy()
    recon_b = synth.reconstruct(b.features[None], [b.label])[0].numpy()
    mid, sounds = panels(at)[1], audio_urls(at)
    at.slider(key="interp-alpha").set_value(0.0).run()
    np.testing.assert_allclose(panels(at)[1], recon_a, atol=1e-4)  # α = 0: A's reconstruction
    at.slider(key="interp-alpha").set_value(1.0).run()
    np.testing.assert_allclose(panels(at)[1], recon_b, atol=1e-4)  # α = 1: B's
    assert np.abs(mid - recon_a).max() > 0.01 and np.abs(mid - recon_b).max() > 0.01
    assert audio_urls(at)[1] != sounds[1] and audio_urls(at)[0] == sounds[0]
    at.radio(key="interp-mode").set_value("slerp").run()
    assert not at.exception
    np.testing.assert_allclose(panels(at)[1], recon_b, atol=1e-4)  # slerp ends at B too


def test_the_path_is_drawn_on_the_map_from_a_to_b(at):
    traces = {t.get("name"): t for t in chart_traces(at, "interp-map")}
    ids = np.concatenate([t["customdata"] for n, t in traces.items() if n != "path"])
    assert len(ids) == 30
    path = np.stack([traces["path"]["x"], traces["path"]["y"]], axis=1)
    assert path.shape == (9, 2) and np.abs(path[-1] - path[0]).max() > 1e-3
    # lerp through a linear projection: step 4 of 0..8 (α = 0.5) sits mid-way from A to B
    np.testing.assert_allclose(path[4], (path[0] + path[-1]) / 2, atol=1e-4)
    assert "mix" not in traces  # α moves redraw the sound, not the map (issue 26)


def test_label_filter_and_map_selection_choose_the_ends(at):
    at.selectbox(key="interp-a-label").set_value("tone").run()
    assert at.selectbox(key="interp-a-clip").value.startswith("tone/")
    assert all(o.startswith("tone/") for o in at.selectbox(key="interp-a-clip").options)
    at.session_state["studio-selected"] = ["rising/rising_bo_1", "noise/noise_cy_2"]
    at.run()
    at.button(key="interp-use-map").click().run()
    assert at.selectbox(key="interp-a-clip").value == "rising/rising_bo_1"
    assert at.selectbox(key="interp-b-clip").value == "noise/noise_cy_2"


def test_make_morph_offers_a_wav_of_every_step_crossfaded(at):
    at.number_input(key="interp-steps").set_value(5).run()
    at.button(key="interp-morph").click().run()
    assert not at.exception
    name, data, seconds = at.session_state["interp-morph-wav"]
    wave, sr = sf.read(io.BytesIO(data))
    n, fade = 4096, int(0.05 * 8000)
    assert sr == 8000 and len(wave) == 5 * n - 4 * fade
    assert seconds == pytest.approx(len(wave) / 8000)
    assert name.endswith("-lerp-5.wav")
    assert at.main.get("download_button")[0].proto.label.startswith("Download morph-")


@pytest.mark.slow
def test_a_morph_is_offered_only_for_the_ends_and_settings_it_was_made_for(at):
    """Issue 15 item 5: the player and download of the last pair stayed after A changed."""
    at.number_input(key="interp-steps").set_value(3).run()
    at.button(key="interp-morph").click().run()
    made = at.session_state["interp-morph-wav"]
    assert len(audio_urls(at)) == 4 and len(at.main.get("download_button")) == 1  # A, mix, B, morph
    first_a = at.selectbox(key="interp-a-clip").value
    other = next(o for o in at.selectbox(key="interp-a-clip").options if o != first_a)
    for change, undo in [
        (
            lambda: at.selectbox(key="interp-a-clip").set_value(other),
            lambda: at.selectbox(key="interp-a-clip").set_value(first_a),
        ),
        (
            lambda: at.radio(key="interp-mode").set_value("slerp"),
            lambda: at.radio(key="interp-mode").set_value("lerp"),
        ),
        (
            lambda: at.number_input(key="interp-steps").set_value(4),
            lambda: at.number_input(key="interp-steps").set_value(3),
        ),
    ]:
        change().run()
        assert not at.exception
        assert len(audio_urls(at)) == 3 and not at.main.get("download_button")  # no stale morph
        undo().run()
        assert len(audio_urls(at)) == 4 and len(at.main.get("download_button")) == 1
        assert at.session_state["interp-morph-wav"] == made  # the same morph, offered again


def test_a_morph_can_pass_through_more_clips_on_its_way(at):
    via = at.multiselect(key="interp-via")
    at.number_input(key="interp-steps").set_value(3).run()
    via.set_value([via.options[1], via.options[2]]).run()
    at.button(key="interp-morph").click().run()
    assert not at.exception
    name, data, _ = at.session_state["interp-morph-wav"]
    wave, _ = sf.read(io.BytesIO(data))
    n, fade, clips = 4096, int(0.05 * 8000), 3 * (3 - 1) + 1  # three legs, ends heard once
    assert len(wave) == clips * n - (clips - 1) * fade
    assert name.endswith("-via-2-lerp-3.wav")


@pytest.mark.slow
def test_without_the_dataset_the_ends_come_from_stored_codes(studio_root, tmp_path, monkeypatch):
    shutil.copytree(studio_root / "checkpoints", tmp_path / "checkpoints")
    forget_training_data(tmp_path / "checkpoints" / "demo")
    monkeypatch.chdir(tmp_path)
    at = open_page("interpolate")
    assert not at.exception and not at.error
    assert at.radio(key="interp-a-source").options == ["stored code", "upload", "record"]
    assert "decoded from the codes the checkpoint stores" in at.info[0].value
    assert len(audio_urls(at)) == 3  # A and B are their decoded codes; the mix plays
    synth = Synthesiser.load(tmp_path / "checkpoints" / "demo")
    latents = read_latents(tmp_path / "checkpoints" / "demo")
    row = [str(i) for i in latents["ids"]].index(at.selectbox(key="interp-a-clip").value)
    label = [int(latents["labels"][row])]
    a_decoded = synth.decode(torch.from_numpy(latents["means"][row : row + 1]), label)[0]
    at.slider(key="interp-alpha").set_value(0.0).run()
    np.testing.assert_allclose(panels(at)[1], a_decoded.numpy(), atol=1e-4)
    np.testing.assert_allclose(panels(at)[0], a_decoded.numpy(), atol=1e-4)
    at.button(key="interp-morph").click().run()
    assert not at.exception and "interp-morph-wav" in at.session_state


def test_an_uploaded_clip_can_be_an_end_and_bad_uploads_say_why(at, write_tone, tmp_path):
    wav = write_tone(tmp_path / "my-tone.wav", seconds=0.6, sample_rate=16000, freq=330.0)
    at.radio(key="interp-a-source").set_value("upload").run()
    assert at.selectbox(key="interp-a-ulabel").options[0] == "falling"
    at.file_uploader(key="interp-a-upload").upload("my-tone.wav", wav.read_bytes(), "audio/wav")
    at.run()
    assert not at.exception and not at.error
    assert chart_traces(at, "interp-spectrograms")[0]["z"].shape == (128, 33)
    assert len(audio_urls(at)) == 3
    at.file_uploader(key="interp-a-upload").upload("broken.wav", b"RIFF0000WAVEjunk", "audio/wav")
    at.run()
    assert [e.value for e in at.error] == [
        "broken.wav: truncated: no audio data chunk; upload a WAV, FLAC or OGG file"
    ]


@pytest.mark.slow
def test_an_uploads_label_is_read_from_its_name_and_used(studio_root, at, write_tone, tmp_path):
    """Issue 15 item 6: "Its label" starts at the label the name gives, and A's
    reconstruction (the mix at α = 0) is made with it."""
    wav = write_tone(tmp_path / "pulses_me_3.wav", seconds=0.6, freq=330.0)
    at.radio(key="interp-a-source").set_value("upload").run()
    assert at.selectbox(key="interp-a-ulabel").value == "falling"  # the first, before a file
    at.file_uploader(key="interp-a-upload").upload("pulses_me_3.wav", wav.read_bytes(), "audio/wav")
    at.run()
    at.slider(key="interp-alpha").set_value(0.0).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="interp-a-ulabel").value == "pulses"
    assert any(
        "as label 'pulses' (read from the name pulses_me_3.wav" in c.value for c in at.caption
    )
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    clip = synth.clip_from_file(wav, "pulses")
    recon = synth.reconstruct(clip.features[None], [clip.label])[0].numpy()
    np.testing.assert_allclose(panels(at)[1], recon, atol=1e-4)
    other = synth.reconstruct(clip.features[None], [synth.label_index("falling")])[0].numpy()
    assert np.abs(recon - other).max() > 0.01  # the label matters to what is heard


@pytest.mark.slow
def test_a_recording_can_be_an_end(studio_root, at, recording_wav):
    """A browser's recording (48 kHz WAV) as B, labelled with the first label by default."""
    at.radio(key="interp-b-source").set_value("record").run()
    assert at.audio_input(key="interp-b-record").sample_rate is None  # the browser's rate
    assert any(c.value.startswith("Record a clip") for c in at.caption)
    assert not at.get("plotly_chart")  # nothing to mix before the recording
    data = recording_wav.read_bytes()
    at.audio_input(key="interp-b-record").set_value(("x_audio.wav", data, "audio/wav")).run()
    assert not at.exception and not at.error
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    label = at.selectbox(key="interp-b-ulabel").value
    assert label == synth.label_names[0]
    clip = synth.clip_from_file(recording_wav, label)  # resampled to 8 kHz
    np.testing.assert_allclose(panels(at)[2], clip.features.numpy(), atol=1e-5)
    at.slider(key="interp-alpha").set_value(1.0).run()
    recon = synth.reconstruct(clip.features[None], [clip.label])[0].numpy()
    np.testing.assert_allclose(panels(at)[1], recon, atol=1e-4)  # α = 1: the recording's
    at.button(key="interp-morph").click().run()
    name, data, _ = at.session_state["interp-morph-wav"]
    assert "-to-recording-b-" in name
    assert len(sf.read(io.BytesIO(data))[0]) == 8 * 4096 - 7 * 400
