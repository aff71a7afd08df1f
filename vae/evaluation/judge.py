"""The judge: a small CNN that listens to a clip and names its label, trained on real clips.

It answers the question a listener would: is a reconstructed or generated "7" heard as a 7?
It hears the waveform through an analysis of its own (a log-mel spectrogram at its own
resolution, normalised per clip), not through the dataset's features: every model at the
same sample rate, whatever its features or its phase method, is then heard by the same ear,
and a decoder cannot please the judge by matching the features it was trained on.
`vae.evaluation.evaluate` runs it on real clips, phase-method copies of them, reconstructions, prior
samples and morphs; its pooled penultimate features (:meth:`Judge.embed`) feed the Fréchet
distance of ``vae.evaluation.distribution``. Training lives in ``vae.evaluation.judge_training``.

A judge is a folder: ``judge.pt`` (weights, loaded with ``weights_only=True``) and
``judge.json`` (format version, JudgeConfig, label names, dataset, its validation
accuracy), written atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio
from torch import nn

from vae.audio import features
from vae.storage import limits
from vae.storage.files import (
    atomic_write_json,
    read_json,
    write_atomically,
)
from vae.storage.output_folder import JUDGE, check_output_folder, write_output
from vae.storage.safe_load import load_weights

# Version 1 judged the dataset's feature spectrograms; version 2 hears waveforms.
JUDGE_FORMAT_VERSION = 2
WEIGHTS_FILE, CONFIG_FILE = "judge.pt", "judge.json"
RETRAIN = "`python -m vae judge DATA --out DIR`"


def _limits(cfg: JudgeConfig) -> list[tuple[bool, str]]:
    """The upper bounds of a judge config that may come from elsewhere (``vae.storage.limits``)."""
    frames = 1 + cfg.clip_samples // max(cfg.hop_length, 1)
    cells = max(cfg.n_fft // 2 + 1, max(cfg.channels, default=1) * cfg.n_mels // 4) * frames
    return [
        (cfg.sample_rate <= limits.MAX_SAMPLE_RATE, f"sample_rate={cfg.sample_rate}: too high"),
        (cfg.n_fft <= limits.MAX_N_FFT, f"n_fft={cfg.n_fft}: at most {limits.MAX_N_FFT}"),
        (cfg.clip_samples <= limits.MAX_CLIP_SAMPLES, f"clip_samples={cfg.clip_samples}: "
         f"at most {limits.MAX_CLIP_SAMPLES}"),
        (cfg.n_labels <= limits.MAX_LABELS, f"n_labels={cfg.n_labels}: at most "
         f"{limits.MAX_LABELS}"),
        (len(cfg.channels) <= 8 and max(cfg.channels, default=1) <= limits.MAX_CHANNELS,
         f"channels={cfg.channels}: at most 8 stages of {limits.MAX_CHANNELS}"),
        (cells <= limits.MAX_ACTIVATION, f"n_fft={cfg.n_fft}, n_mels={cfg.n_mels}, "
         f"channels={cfg.channels} over {frames} frames: {cells:,} values, at most "
         f"{limits.MAX_ACTIVATION:,}"),
    ]  # fmt: skip


@dataclass(frozen=True)
class JudgeConfig:
    """What the judge hears and how it is shaped: clips of ``clip_samples`` at
    ``sample_rate`` -> log-mel (n_mels, n_frames) -> one of ``n_labels``.

    The analysis: Hann-windowed STFT (``n_fft``, ``hop_length``), ``n_mels`` mel bands
    up to half the sample rate, power in dB relative to the clip's loudest cell, floored
    ``floor_db`` below it, then standardised per clip (zero mean, unit variance), so the
    level of a clip does not matter.
    """

    sample_rate: int
    clip_samples: int
    n_labels: int
    n_fft: int = 512
    hop_length: int = 128
    n_mels: int = 64
    floor_db: float = 80.0
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.2

    def __post_init__(self) -> None:
        checks = (
            (self.n_labels >= 2, f"n_labels={self.n_labels}: a judge needs at least 2 labels"),
            (
                bool(self.channels) and min(self.channels) >= 1,
                f"channels={self.channels} must be positive, e.g. (16, 32, 64)",
            ),
            (self.sample_rate > 0, f"sample_rate={self.sample_rate} must be positive"),
            (
                self.n_fft >= 16 and 0 < self.hop_length <= self.n_fft,
                f"n_fft={self.n_fft}, hop_length={self.hop_length}: need 0 < hop <= n_fft",
            ),
            (
                0 < self.n_mels <= self.n_fft // 2,
                f"n_mels={self.n_mels} must lie in 1..n_fft/2 ({self.n_fft // 2})",
            ),
            (self.clip_samples >= self.n_fft, f"clip_samples={self.clip_samples} < n_fft"),
            (self.floor_db > 0, f"floor_db={self.floor_db} must be positive, e.g. 80"),
            *_limits(self),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def for_audio(cls, sample_rate: int, clip_samples: int, n_labels: int) -> JudgeConfig:
        """The default ear at a sample rate: 16 ms hops, a window of about 64 ms rounded to a
        power of two (512 at 8 kHz, 1024 at 16 kHz), 64 mel bands: 64 x 64 cells for a
        second of audio. 10 ms hops cost the network 1.6x as much for one second (over the
        minute a judge may take on FSDD), and a small network at that cost heard worse."""
        n_fft = 2 ** round(math.log2(sample_rate * 0.064))
        return cls(
            sample_rate=sample_rate,
            clip_samples=clip_samples,
            n_labels=n_labels,
            n_fft=n_fft,
            hop_length=max(1, round(sample_rate * 0.016)),
            n_mels=min(64, n_fft // 2),
        )

    @property
    def n_frames(self) -> int:
        return self.clip_samples // self.hop_length + 1


@functools.lru_cache(maxsize=4)
def _mel_filters(cfg: JudgeConfig) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular mel filters, HTK scale, up to Nyquist."""
    fb = torchaudio.functional.melscale_fbanks(
        cfg.n_fft // 2 + 1, 0.0, cfg.sample_rate / 2, cfg.n_mels, cfg.sample_rate
    )
    return fb.T.contiguous()


def fit_length(waves: torch.Tensor, samples: int) -> torch.Tensor:
    """Cut or zero-pad the end of clips (..., n) to (..., samples)."""
    n = waves.shape[-1]
    if n >= samples:
        return waves[..., :samples]
    return nn.functional.pad(waves, (0, samples - n))


def log_mel(waves: torch.Tensor, cfg: JudgeConfig) -> torch.Tensor:
    """The judge's analysis: waveforms (B, samples) -> (B, n_mels, n_frames), per clip
    zero mean and unit variance (a silent clip gives zeros)."""
    waves = fit_length(waves.to(torch.float32), cfg.clip_samples)
    # The features' framed STFT (centred, Hann) at the judge's own sizes.
    spec = torch.view_as_real(features.framed_stft(waves, cfg.n_fft, cfg.hop_length))
    power = spec.square().sum(-1)  # (B, frames, bins)
    mel = power @ _mel_filters(cfg).T.to(waves.device)  # (B, frames, n_mels)
    db = 10 * torch.log10(mel.clamp(min=1e-10)).transpose(-1, -2)  # (B, n_mels, frames)
    db = db - db.amax(dim=(-2, -1), keepdim=True)
    db = db.clamp(min=-cfg.floor_db)
    mean = db.mean(dim=(-2, -1), keepdim=True)
    std = db.std(dim=(-2, -1), keepdim=True)
    return (db - mean) / (std + 1e-5)


class JudgeNet(nn.Module):
    """Conv blocks (3x3 conv, BatchNorm, SiLU, 2x2 max-pool), global average, linear."""

    def __init__(self, config: JudgeConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in config.channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.SiLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(c_in, config.n_labels))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, frames) -> pooled penultimate features (B, channels[-1])."""
        h = self.features(x.unsqueeze(1))  # (B, C, mels', frames')
        return h.mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, frames) -> logits (B, n_labels)."""
        return self.head(self.embed(x))


def check_judge_out(out: str | Path) -> None:
    """Refuse ``out`` unless it is missing, empty or a judge (a checkpoint, a dataset or a
    folder of other files is never written into); called before training.

    Raises:
        ValueError: one line naming the folder, what it holds and the fix.
    """
    check_output_folder(out, JUDGE)


def save_judge(out: str | Path, model: JudgeNet, info: dict[str, Any]) -> Path:
    """Write judge.pt then judge.json (last: a folder holding it is complete) aside and put
    them in place (:func:`vae.storage.output_folder.write_output`: an older judge's files are
    replaced,
    other files kept); ``info`` adds the label names, dataset, training settings and
    figures to the config.

    Raises:
        ValueError: ``out`` holds something other than a judge.
    """
    config = dataclasses.asdict(model.config)
    body = {"format_version": JUDGE_FORMAT_VERSION, "judge_config": config, **info}

    def write(tmp: Path) -> None:
        write_atomically(tmp / WEIGHTS_FILE, lambda f: torch.save(model.state_dict(), f))
        atomic_write_json(tmp / CONFIG_FILE, body)

    return write_output(out, JUDGE, write)


class Judge:
    """A trained judge, ready to hear clips at its sample rate."""

    def __init__(self, model: JudgeNet, info: dict[str, Any]):
        self.model = model.eval()
        self.info = info
        self.config = model.config
        self.label_names: list[str] = list(info["label_names"])

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @classmethod
    def load(cls, path: str | Path) -> Judge:
        """Load a judge folder; ValueError naming the file and the fix when it is unusable."""
        path = Path(path)
        info = read_json(path / CONFIG_FILE, what="not a judge", fix=f"train one with {RETRAIN}")
        version = info.get("format_version") if isinstance(info, dict) else None
        if version != JUDGE_FORMAT_VERSION:
            why = " (version 1 judged spectrograms; judges now hear audio)" if version == 1 else ""
            raise ValueError(
                f"{path / CONFIG_FILE}: judge format {version!r} is not "
                f"{JUDGE_FORMAT_VERSION}{why}; retrain it with {RETRAIN}"
            )
        try:
            cfg = info["judge_config"]
            model = JudgeNet(JudgeConfig(**{**cfg, "channels": tuple(cfg["channels"])}))
            labels = [str(name) for name in info["label_names"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{path / CONFIG_FILE}: damaged judge config ({err}); retrain it with {RETRAIN}"
            ) from None
        if len(labels) != model.config.n_labels:
            raise ValueError(
                f"{path / CONFIG_FILE}: {len(labels)} label names for {model.config.n_labels} "
                f"outputs; retrain it with {RETRAIN}"
            )
        load_weights(
            model, path / WEIGHTS_FILE, limits.MAX_WEIGHTS_BYTES, f"the judge in {CONFIG_FILE}",
            f"retrain the judge with {RETRAIN}",
        )  # fmt: skip
        return cls(model, {**info, "label_names": labels})

    def check_rate(self, sample_rate: int, what: str) -> None:
        """ValueError when ``what`` (audio, a dataset, a checkpoint) is at another rate."""
        if int(sample_rate) != self.sample_rate:
            raise ValueError(
                f"{what}: audio at {sample_rate} Hz, but the judge hears {self.sample_rate} Hz; "
                f"train a judge on a dataset at {sample_rate} Hz with {RETRAIN}"
            )

    def check_compatible(self, sample_rate: int, label_names: list[str], what: str) -> None:
        """ValueError when ``what`` has another sample rate, or names other labels (an
        unlabelled checkpoint, with no names, passes on its rate alone)."""
        self.check_rate(sample_rate, what)
        if label_names and set(label_names) != set(self.label_names):
            raise ValueError(
                f"{what}: labels {list(label_names)} are not the judge's {self.label_names}; "
                f"train a judge on the checkpoint's dataset with {RETRAIN}"
            )

    @torch.no_grad()
    def listen(
        self, waves: np.ndarray | torch.Tensor, sample_rate: int | None = None, batch: int = 128
    ) -> tuple[np.ndarray, np.ndarray]:
        """Label probabilities (B, n_labels) and embeddings (B, C) of waveforms (B, samples).

        Clips longer or shorter than the judge's are cut or zero-padded at the end. Give
        ``sample_rate`` whenever it is known: audio at another rate than the judge's is
        refused with a ValueError.
        """
        if sample_rate is not None:
            self.check_rate(sample_rate, "audio")
        arr = np.asarray(waves, dtype=np.float32)
        # torch will not wrap a read-only (memory-mapped) array without a warning: copy it.
        x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
        if x.dim() != 2:
            raise ValueError(f"waveforms of shape {tuple(x.shape)}: give (clips, samples)")
        probs, embeddings = [], []
        for i in range(0, len(x), batch):
            h = self.model.embed(log_mel(x[i : i + batch], self.config))  # (b, C)
            embeddings.append(h)
            probs.append(torch.softmax(self.model.head(h), dim=-1))
        if not probs:
            return np.zeros((0, len(self.label_names))), np.zeros((0, self.config.channels[-1]))
        return torch.cat(probs).numpy(), torch.cat(embeddings).numpy()

    def probabilities(
        self, waves: np.ndarray | torch.Tensor, sample_rate: int | None = None
    ) -> np.ndarray:
        """Label probabilities (B, n_labels) of waveforms (B, samples); see :meth:`listen`."""
        return self.listen(waves, sample_rate)[0]

    def embed(self, waves: np.ndarray | torch.Tensor, sample_rate: int | None = None) -> np.ndarray:
        """Pooled penultimate features (B, C) of waveforms (B, samples): the global average
        of the last conv block, the input of the final linear layer; see :meth:`listen`."""
        return self.listen(waves, sample_rate)[1]
