"""The audio module on real files written with soundfile."""

import numpy as np
import pytest
import soundfile as sf

from vae.audio import io as audio


def tone(sr: int, seconds: float = 0.5, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    "subtype,fmt,suffix",
    [
        ("PCM_16", "WAV", ".wav"),
        ("PCM_24", "WAV", ".wav"),
        ("PCM_32", "WAV", ".wav"),
        ("FLOAT", "WAV", ".wav"),
        ("PCM_U8", "WAV", ".wav"),
        ("PCM_24", "FLAC", ".flac"),
        ("VORBIS", "OGG", ".ogg"),
    ],
)
def test_reads_every_format_as_mono_float(tmp_path, subtype, fmt, suffix):
    path = tmp_path / f"clip{suffix}"
    sf.write(path, tone(16000), 16000, subtype=subtype, format=fmt)
    wave, sr = audio.read_audio(path)
    assert sr == 16000 and wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 8000) <= 1
    assert 0.4 < np.abs(wave).max() < 0.6


def test_stereo_is_mixed_and_resampled(tmp_path):
    left, right = tone(44100, freq=300), tone(44100, freq=300) * 0.0
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_24")
    wave, sr = audio.read_audio(path, sample_rate=8000)
    assert sr == 8000
    assert abs(len(wave) - 4000) <= 1
    assert np.abs(wave).max() == pytest.approx(0.25, abs=0.02)  # mean of the two channels
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) * 8000 / len(wave) == pytest.approx(300, abs=4)


def test_bad_files_raise_audio_error_naming_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    good = tmp_path / "good.wav"
    sf.write(good, tone(8000), 8000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), 8000)
    short = tmp_path / "short.wav"
    sf.write(short, tone(8000, seconds=0.001), 8000)
    nan = tmp_path / "nan.wav"
    bad = tone(8000)
    bad[100] = np.nan
    sf.write(nan, bad, 8000, subtype="FLOAT")
    expected = {
        empty: "empty",
        text: "not readable",
        cut: "truncated",
        silent: "silent",
        short: "too short",
        nan: "NaN",
    }
    for path, reason in expected.items():
        with pytest.raises(audio.AudioError) as info:
            audio.read_audio(path)
        assert str(path) in str(info.value) and reason in str(info.value)


def test_fit_length_chunk_and_trim():
    wave = np.arange(10, dtype=np.float32)
    assert audio.fit_length(wave, 4).tolist() == [0, 1, 2, 3]
    assert audio.fit_length(wave, 12).tolist() == list(range(10)) + [0, 0]
    segments = audio.chunk(wave, 4)
    assert [s for s, _ in segments] == [0, 4, 8]  # tail of 2 = half a segment is kept
    assert segments[-1][1].tolist() == [8, 9, 0, 0]
    assert [s for s, _ in audio.chunk(np.arange(9, dtype=np.float32), 4)] == [0, 4]
    loud = np.concatenate([np.zeros(640), tone(8000, 0.2), np.zeros(640)]).astype(np.float32)
    trimmed = audio.trim_silence(loud, top_db=40)
    assert 1600 <= len(trimmed) <= 1600 + 128


def test_write_wav_is_atomic_and_normalised(tmp_path):
    path = audio.write_wav(tmp_path / "sub" / "x.wav", tone(8000, amp=0.1), 8000)
    data, sr = sf.read(path)
    assert sr == 8000 and np.abs(data).max() == pytest.approx(audio.PEAK, abs=1e-3)
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]  # no temp file left
    raw = audio.wav_bytes(tone(8000, amp=0.1), 8000, normalise=False)
    back, _ = sf.read(__import__("io").BytesIO(raw))
    assert np.abs(back).max() == pytest.approx(0.1, abs=1e-3)


def test_crossfade_concat_length_and_continuity():
    a, b = np.ones(100, np.float32), -np.ones(100, np.float32)
    out = audio.crossfade_concat([a, b, a], fade=20)
    assert len(out) == 100 * 3 - 2 * 20
    assert out[0] == 1 and out[-1] == 1 and np.abs(np.diff(out)).max() <= 0.11
