"""Music end to end: genre folders of long tracks -> consecutive segments -> a model -> morphs
between segments of different tracks, and one crossfaded morph across several segments; and
the reader that keeps preprocessing long files in bounded memory."""

import csv
import tracemalloc
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.clirun import vae
from vae.audio import features
from vae.audio import io as audio
from vae.audio.io import peak_normalise
from vae.data import ingest
from vae.data.dataset import load_dataset
from vae.synthesis.inference import Synthesiser

MUSIC = features.get_preset("music")
RATE, SEGMENT = MUSIC.sample_rate, MUSIC.clip_samples  # 22,050 Hz, 5.94 s
# 20 s: 3 segments and a 37 % tail (dropped); 15 s: 2 segments and a 52 % tail (kept, padded).
TRACKS = {"track0": 20.0, "track1": 15.0}
GENRES = ("bass", "bright")
TINY_MODEL = ["--channels", "8,16", "--latent-dim", "4", "--batch-size", "8"]


def track(genre: str, seconds: float, seed: int) -> np.ndarray:
    """A long synthetic track (samples,): one note every 0.25 s. ``bass``: low pure tones;
    ``bright``: high notes rich in harmonics over noise bursts, so the genres sound apart."""
    rng = np.random.default_rng(seed)
    n, note = int(seconds * RATE), int(0.25 * RATE)
    t = np.arange(note) / RATE
    out = np.zeros(n, np.float32)
    for start in range(0, n - note, note):
        if genre == "bass":
            wave = np.sin(2 * np.pi * rng.uniform(80, 200) * t)
        else:
            f = rng.uniform(600, 1500)
            wave = sum(np.sin(2 * np.pi * h * f * t) / h for h in range(1, 6))
            wave = wave + 0.3 * rng.standard_normal(note)
        out[start : start + note] = wave * np.exp(-t * 8)
    return out / np.abs(out).max() * 0.8


def expected_segments(seconds: float) -> int:
    """Whole segments, plus a padded tail when it holds at least half a segment."""
    n = int(seconds * RATE)
    return n // SEGMENT + int(n % SEGMENT >= SEGMENT / 2)


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> dict[str, Path]:
    """Genre folders of long tracks -> a music dataset -> a tiny model trained 2 epochs."""
    root = tmp_path_factory.mktemp("music")
    src, data, ckpt = root / "genres", root / "data", root / "ckpt"
    for g, genre in enumerate(GENRES):
        (src / genre).mkdir(parents=True)
        for k, (name, seconds) in enumerate(TRACKS.items()):
            sf.write(src / genre / f"{name}.wav", track(genre, seconds, 10 * g + k), RATE)
    vae("preprocess", src, "--out", data, "--preset", "music")
    vae("train", data, "--out", ckpt, "--epochs", "2", *TINY_MODEL)
    return {"root": root, "data": data, "ckpt": ckpt}


def read_wav(path: Path) -> np.ndarray:
    wave, sr = sf.read(path, dtype="float32")
    assert sr == RATE
    return wave


def reconstruction(synth: Synthesiser, ds, clip_id: str) -> np.ndarray:
    """What the model makes of one dataset segment, as the CLI writes it (peak 0.99)."""
    clip = synth.clip_from_dataset(ds, clip_id)
    feats = synth.reconstruct(clip.features.unsqueeze(0), [clip.label])
    return peak_normalise(synth.to_audio(feats)[0])


@pytest.mark.slow
def test_tracks_become_consecutive_segments_labelled_by_genre(music):
    ds = load_dataset(music["data"])
    assert ds.info["label_rule"] == "folder" and ds.label_names == list(GENRES)
    assert ds.features.shape[1:] == MUSIC.shape == (512, 256)
    with (music["data"] / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    for genre in GENRES:
        for name, seconds in TRACKS.items():
            mine = [r for r in rows if r["source"] == f"{genre}/{name}.wav"]
            count = expected_segments(seconds)
            assert len(mine) == count == 3
            assert [int(r["start"]) for r in mine] == [k * SEGMENT for k in range(count)]
            base = f"{genre}/{name}"
            assert [r["id"] for r in mine] == [base] + [f"{base}#{k}" for k in range(1, count)]
            assert {r["label"] for r in mine} == {genre}
            assert len({r["split"] for r in mine}) == 1  # a track never straddles the split
    # the stored segment is the track's audio at its offset (peak-normalised)
    i = ds.index_of("bass/track0#1")
    original = track("bass", TRACKS["track0"], 0)[SEGMENT : 2 * SEGMENT]
    stored = np.asarray(ds.waveforms[i])
    assert np.corrcoef(stored, original)[0, 1] > 0.999


@pytest.mark.slow
def test_interpolate_between_segments_of_different_tracks(music):
    a, b = "bass/track0#1", "bright/track1#2"
    out = music["root"] / "ab"
    vae("interpolate", music["ckpt"], a, b, "--steps", "3", "--out", out)
    steps = [read_wav(p) for p in sorted(out.glob("step*.wav"))]
    assert len(steps) == 3 and all(len(w) == SEGMENT for w in steps)
    assert all(np.isfinite(w).all() for w in steps)
    synth, ds = Synthesiser.load(music["ckpt"]), load_dataset(music["data"])
    for wave, clip_id in ((steps[0], a), (steps[-1], b)):
        recon = reconstruction(synth, ds, clip_id)
        np.testing.assert_allclose(wave, recon, atol=0.02)  # 16-bit WAV vs float
        assert np.corrcoef(wave, recon)[0, 1] > 0.999
    fade = int(0.05 * RATE)
    assert len(read_wav(out / "morph.wav")) == 3 * SEGMENT - 2 * fade


@pytest.mark.slow
def test_morph_across_several_segments_is_one_crossfaded_clip(music):
    route = ["bass/track0", "bright/track0#1", "bass/track1#2"]
    out = music["root"] / "path"
    vae("interpolate", music["ckpt"], *route, "--steps", "3", "--out", out)
    steps = [read_wav(p) for p in sorted(out.glob("step*.wav"))]
    n = (len(route) - 1) * (3 - 1) + 1  # the clip where two legs meet is heard once
    assert len(steps) == n == 5
    morph, fade = read_wav(out / "morph.wav"), int(0.05 * RATE)
    assert len(morph) == n * SEGMENT - (n - 1) * fade and np.isfinite(morph).all()
    synth, ds = Synthesiser.load(music["ckpt"]), load_dataset(music["data"])
    for wave, clip_id in ((steps[0], route[0]), (steps[2], route[1]), (steps[-1], route[-1])):
        np.testing.assert_allclose(wave, reconstruction(synth, ds, clip_id), atol=0.02)
    # No clicks: around each join the largest sample-to-sample jump is no larger than the
    # largest inside the steps themselves (a linear fade moves by 1/fade per sample).
    jumps = np.abs(np.diff(morph))
    inside = max(float(np.abs(np.diff(w)).max()) for w in steps)
    for j in range(1, n):
        join = j * (SEGMENT - fade)  # where step j starts fading in
        assert jumps[join - fade : join + 2 * fade].max() <= inside * 1.05 + 0.01
    np.testing.assert_allclose(morph[: SEGMENT - fade], steps[0][: SEGMENT - fade], atol=1e-4)


@pytest.mark.slow
def test_morph_path_of_two_clips_is_the_morph(music):
    synth, ds = Synthesiser.load(music["ckpt"]), load_dataset(music["data"])
    a, b = (synth.clip_from_dataset(ds, i) for i in ("bass/track1", "bright/track1"))
    waves, morph = synth.morph(a, b, 3)
    path_waves, path_morph = synth.morph_path([a, b], 3)
    np.testing.assert_array_equal(waves, path_waves)
    np.testing.assert_array_equal(morph, path_morph)
    with pytest.raises(ValueError, match="at least 2 clips"):
        synth.morph_path([a], 3)


def test_the_reader_holds_long_files_one_at_a_time(tmp_path, monkeypatch):
    """Read-ahead is bounded by bytes too: many short files overlap, long ones do not."""
    sizes = [10, 10, 10, 100, 100, 10, 10, 10, 10, 10, 10, 10, 10, 10]
    files = []
    for i, size in enumerate(sizes):
        files.append(tmp_path / f"{i}.wav")
        files[-1].write_bytes(b"x" * size)
    monkeypatch.setattr(ingest, "READ_AHEAD_BYTES", 150)

    class Recording(Executor):
        def __init__(self) -> None:
            self.submitted: list[Path] = []

        def submit(self, fn, /, *args, **kwargs) -> Future:
            self.submitted.append(args[0])
            done: Future = Future()
            done.set_result(fn(*args))
            return done

    pool = Recording()
    order, most = [], 0
    for k, (path, result) in enumerate(ingest.read_ahead(pool, lambda p: p.stat().st_size, files)):
        order.append(path)
        assert result == sizes[k]
        held = [p.stat().st_size for p in pool.submitted[k:]]  # this file and those ahead
        assert len(held) <= ingest.READ_AHEAD
        assert sum(held) <= 150 or len(held) == 1
        most = max(most, len(held))
    assert order == files
    assert most == ingest.READ_AHEAD  # the short files at the end overlap as before


@pytest.mark.parametrize("orig_sr", [44100, 48000])
def test_long_waves_resample_window_by_window_to_the_same_samples(orig_sr):
    wave = np.random.default_rng(0).standard_normal(300_001).astype(np.float32)
    whole = audio.resample(wave[:1000], orig_sr, RATE)  # short: one torchaudio call
    assert len(whole) == -(-1000 * RATE // orig_sr)
    with torch.no_grad():
        want = audio._resampler(orig_sr, RATE)(torch.from_numpy(wave)).numpy()
    got = audio._resample_windows(wave, orig_sr, RATE, window=2**14)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
def test_a_long_track_is_decoded_and_resampled_holding_it_about_once(tmp_path):
    """A file past audio.WHOLE_FILE_BYTES streams into one array sized from its header (not
    blocks plus their joined copy), its peak is found without a copy, and resampling goes a
    window at a time: numpy's peak stays near the decoded wave plus its resampled copy."""
    seconds, sr = 400.0, 44100  # 35 MB as 16-bit WAV, 70 MB decoded
    n = int(seconds * sr)
    tone = (np.sin(2 * np.pi * 220 * np.arange(n) / sr) * 0.5 * 32767).astype("<i2")
    path = tmp_path / "long.wav"
    sf.write(path, tone, sr, subtype="PCM_16")
    assert path.stat().st_size > audio.WHOLE_FILE_BYTES
    tracemalloc.start()
    try:
        wave, rate = audio.read_audio(path, RATE, max_seconds=audio.MAX_SECONDS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rate == RATE and len(wave) == -(-n * RATE // sr)
    decoded, resampled = 4 * n, 4 * len(wave)
    assert peak < 1.15 * (decoded + resampled)  # was 2 x decoded + its abs() copy
