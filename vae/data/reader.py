"""Reading one source file into clips: the reader that every way of preprocessing shares.

:func:`read_source` decodes a file (never raising: a bad file must not stop a batch),
:func:`clips_of` shapes its wave into the loud clips a :class:`~vae.audio.features.FeatureConfig`
asks for. ``vae.data.ingest`` (reader threads) and ``vae.data.parallel`` (worker processes) both go
through them; :func:`load_clips` is the same reading for one file that raises instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vae.audio import io as audio
from vae.audio.features import FeatureConfig
from vae.data import sources

# The clips one file gives: (segment, start sample in the file, clip (clip_samples,)).
Segments = list[tuple[int, int, np.ndarray]]


def read_limits(cfg: FeatureConfig) -> dict[str, float]:
    """How much of a file ``cfg`` can use, as ``audio.read_audio`` arguments: one clip per
    file needs only the start (an hours-long file then costs what a short one does); chunks
    use the whole file, so files longer than ``audio.MAX_SECONDS`` are refused."""
    if cfg.segment == "single":
        return {"head_seconds": max(audio.HEAD_SECONDS, 2 * cfg.clip_seconds)}
    return {"max_seconds": audio.MAX_SECONDS}


def shape_clips(wave: np.ndarray, cfg: FeatureConfig) -> list[tuple[int, np.ndarray]]:
    """Cut a waveform (samples,) at ``cfg.sample_rate`` into [(start_sample, clip)].

    "single" gives one clip (silence trimmed if asked, then cut or zero-padded at the end);
    "chunks" gives consecutive segments. Starts count samples from the beginning of the file.
    """
    offset = 0
    if cfg.trim_db is not None:
        offset, stop = audio.loud_bounds(wave, cfg.trim_db)
        wave = wave[offset:stop]
    if cfg.segment == "chunks":
        return [(offset + start, seg) for start, seg in audio.chunk(wave, cfg.clip_samples)]
    return [(offset, audio.fit_length(wave, cfg.clip_samples))]


def load_clips(path: str | Path, cfg: FeatureConfig) -> list[tuple[int, np.ndarray]]:
    """Read a file and shape it as the config says: [(start_sample, clip (clip_samples,))].

    Raises AudioError for unusable files; see :func:`shape_clips` for the shaping.
    """
    wave, _ = audio.read_audio(path, cfg.sample_rate, **read_limits(cfg))
    return shape_clips(wave, cfg)


def _reason(path: Path, err: Exception, expected: bool = False) -> str:
    """One line, without the file name errors.csv already has; an unexpected error keeps
    its type's name."""
    text = " ".join(str(err).split()) or type(err).__name__
    for prefix in (f"{path}: ", f"{path.name}: "):
        text = text.removeprefix(prefix)
    return (
        text if expected or isinstance(err, audio.AudioError) else f"{type(err).__name__}: {text}"
    )


def read_source(
    path: Path,
    src: Path,
    cfg: FeatureConfig,
    rule: str,
    native: bool = False,
    times: dict[str, float] | None = None,
) -> tuple[str, str, np.ndarray, int] | str:
    """(label, speaker, wave (samples,), rate) of one file, or why not. The wave is at
    ``cfg.sample_rate`` unless ``native`` (the caller then resamples, in a batch); ``times``
    collects the seconds spent reading and decoding (``audio.read_audio``).

    Never raises: a bad file must not stop the batch.
    """
    try:
        label, speaker = sources.label_for(path, src, rule)
    except ValueError as err:
        return _reason(path, err, expected=True)
    try:
        rate = None if native else cfg.sample_rate
        wave, sr = audio.read_audio(path, rate, times=times, **read_limits(cfg))
    except Exception as err:  # noqa: BLE001 - any failure is this file's, reported not raised
        return _reason(path, err)
    return label, speaker, wave, sr


def clips_of(path: Path, wave: np.ndarray, cfg: FeatureConfig) -> Segments | str:
    """The loud clips of a wave at ``cfg.sample_rate``, or why there are none."""
    try:
        clips = shape_clips(wave, cfg)
    except Exception as err:  # noqa: BLE001
        return _reason(path, err)
    loud = [(k, s, c) for k, (s, c) in enumerate(clips) if np.abs(c).max() >= audio.SILENCE_PEAK]
    return loud or "silent after trimming"


def read_file(
    path: Path, src: Path, cfg: FeatureConfig, rule: str
) -> tuple[str, str, Segments] | str:
    """(label, speaker, [(segment, start, clip)]) of one file, or why not; never raises."""
    source = read_source(path, src, cfg, rule)
    if isinstance(source, str):
        return source
    label, speaker, wave, _ = source
    clips = clips_of(path, wave, cfg)
    return clips if isinstance(clips, str) else (label, speaker, clips)
