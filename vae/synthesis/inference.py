"""A trained checkpoint as an instrument: audio -> codes -> spectrograms -> audio.

Both faces use this one class: the CLI's reconstruct / interpolate / sample commands and the
app's Explore, Interpolate and Synthesise pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from threading import Lock

import numpy as np
import torch

from vae.audio import features as F
from vae.audio.io import crossfade_concat, peak_normalise
from vae.data.dataset import CONFIG_FILE as DATASET_CONFIG
from vae.data.dataset import SpectrogramSet, load_dataset
from vae.data.reader import load_clips
from vae.model.checkpoints import Checkpoint, load_checkpoint
from vae.model.conv_vae import Labels
from vae.model.prior import ALL, LatentPrior, read_prior
from vae.synthesis.latent import INTERPOLATION_MODES, interpolation_path, lerp, slerp
from vae.vocoder.network import CONFIG_FILE as VOCODER_CONFIG
from vae.vocoder.network import Vocoder, describe_verdict, load_vocoder, vocoder_dir

# How features become sound: the checkpoint's vocoder where it beat Griffin-Lim on the
# validation copies when it was trained, else Griffin-Lim ("auto"); always the vocoder (an
# error without one); or always Griffin-Lim.
PHASES = ("auto", "vocoder", "griffin-lim")


@dataclass
class Clip:
    """One clip in hand: its name, waveform (clip_samples,), features (bins, frames), label,
    and its code (latent_dim,) when known without encoding (a stored latent mean)."""

    name: str
    wave: np.ndarray
    features: torch.Tensor
    label: int = -1
    code: torch.Tensor | None = None


class Synthesiser:
    """Wraps a loaded checkpoint; every method works in eval mode without gradients.

    ``phase`` (one of PHASES) says how features become sound; :attr:`phase_method` says
    which is in use and :attr:`phase_reason` why. The checkpoint's ``vocoder/`` folder is
    read on first use, and again whenever it is rewritten.
    """

    def __init__(self, checkpoint: Checkpoint, phase: str = "auto"):
        if phase not in PHASES:
            raise ValueError(f"phase={phase!r}: choose one of {PHASES}")
        self.checkpoint = checkpoint
        self.model = checkpoint.model.eval()
        self.config: F.FeatureConfig = checkpoint.feature_config
        self.label_names: list[str] = list(checkpoint.label_names)
        self.device = next(self.model.parameters()).device
        # Samples come from the learned prior when the checkpoint has one (prior.npz), else
        # from N(0, I); set to None to draw from N(0, I) anyway.
        self.prior: LatentPrior | None = read_prior(checkpoint.path, self.latent_dim)
        self.phase = phase
        self.vocoder_error: str | None = None  # why the vocoder/ folder could not be used
        self._vocoder: tuple[float, Vocoder | None] | None = None  # (vocoder.json mtime, it)
        self._vocoder_lock = Lock()
        if phase == "vocoder":
            self.phase_method  # noqa: B018 - refuse a missing or unusable vocoder now

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", phase: str = "auto") -> Synthesiser:
        return cls(load_checkpoint(path, device=device), phase)

    @property
    def vocoder(self) -> Vocoder | None:
        """The vocoder in use, or None: phase "vocoder" uses the checkpoint's (an unusable
        or missing one raises); "auto" uses it only where it beat Griffin-Lim when trained
        (``Vocoder.won``), so one that lost, or has no verdict, is None here; "griffin-lim"
        never. :attr:`phase_reason` says which and why."""
        found = self._found()
        if self.phase == "auto" and found is not None and not found.won:
            return None
        return found

    def _found(self) -> Vocoder | None:
        """The checkpoint's vocoder whatever its verdict (None: none, unusable, or phase
        "griffin-lim"); read again when vocoder.json changes."""
        if self.phase == "griffin-lim":
            return None
        config = vocoder_dir(self.checkpoint.path) / VOCODER_CONFIG
        try:
            stamp = config.stat().st_mtime
        except OSError:
            stamp = 0.0
        with self._vocoder_lock:
            if self._vocoder is None or self._vocoder[0] != stamp:
                found, self.vocoder_error = None, None
                if stamp:
                    try:
                        found = load_vocoder(config.parent, self.config)
                    except ValueError as err:
                        self.vocoder_error = str(err)
                self._vocoder = (stamp, found)
            found = self._vocoder[1]
        if found is None and self.phase == "vocoder":
            raise ValueError(
                self.vocoder_error
                or f"checkpoint {self.checkpoint.path} has no vocoder; train one with "
                f"`python -m vae vocoder DATA --checkpoint {self.checkpoint.path}` or "
                "use --phase griffin-lim"
            )
        return found

    @property
    def phase_method(self) -> str:
        """What :meth:`to_audio` uses now: "vocoder" or "griffin-lim"."""
        return "vocoder" if self.vocoder is not None else "griffin-lim"

    @property
    def phase_reason(self) -> str:
        """The phase in use and why, in one line for a page or the CLI: e.g. "Griffin-Lim:
        the vocoder lost to Griffin-Lim on the validation copies (LSD ...)"."""
        if self.phase == "griffin-lim":
            return "Griffin-Lim, as asked (--phase griffin-lim)"
        found, used = self._found(), self.vocoder
        if self.phase == "vocoder":
            return f"the vocoder, as asked (--phase vocoder); {describe_verdict(found.info)}"
        if used is not None:
            return f"the vocoder: {describe_verdict(used.info)}"
        if found is not None:
            return f"Griffin-Lim: {describe_verdict(found.info)}"
        if self.vocoder_error:
            return f"Griffin-Lim: the checkpoint's vocoder is unusable ({self.vocoder_error})"
        return "Griffin-Lim: the checkpoint has no vocoder"

    @property
    def conditional(self) -> bool:
        return self.checkpoint.model_config.n_labels > 0

    @property
    def latent_dim(self) -> int:
        return self.checkpoint.model_config.latent_dim

    def label_index(self, label: str | int | None) -> int:
        """Index of a label name (or index); -1 for None. ValueError lists the choices."""
        if label is None or label == -1:
            return -1
        if isinstance(label, int) and 0 <= label < len(self.label_names):
            return label
        if str(label) in self.label_names:
            return self.label_names.index(str(label))
        raise ValueError(f"label {label!r} is not one of this checkpoint's {self.label_names}")

    def clip_from_file(self, path: str | Path, label: str | int | None = None) -> Clip:
        """The first clip of an audio file, shaped as the checkpoint's features expect."""
        _, wave = load_clips(path, self.config)[0]
        wave = peak_normalise(wave)
        feats = F.waveform_to_features(wave, self.config)  # (bins, frames)
        return Clip(Path(path).stem, wave, feats, self.label_index(label))

    def clip_from_dataset(
        self, ds: SpectrogramSet, clip_id: str, label: str | int | None = None
    ) -> Clip:
        """A preprocessed clip by id; its own label unless ``label`` overrides it.

        Raises:
            ValueError: the id is not in ``ds`` (naming close ids), or ``ds`` was made with
                other feature settings than this checkpoint.
        """
        if ds.config.fingerprint() != self.config.fingerprint():
            raise ValueError(
                f"{ds.root}: its features differ from this checkpoint's; pick the dataset the "
                "checkpoint was trained on, or preprocess with its settings"
            )
        i = ds.index_of(clip_id)
        feats = torch.from_numpy(np.asarray(ds.features[i], dtype=np.float32))  # (bins, frames)
        own = ds.labels[i] if self.conditional else None
        index = self.label_index(label if label is not None else own)
        return Clip(clip_id.replace("/", "_"), np.asarray(ds.waveforms[i]), feats, index)

    def _labels(self, labels: Labels, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError(f"this checkpoint is conditional on {self.label_names}: give a label")
        t = torch.as_tensor(labels, device=self.device)
        if t.dtype == torch.long and (t < 0).any():
            raise ValueError(f"this checkpoint is conditional on {self.label_names}: give a label")
        return t.expand(n) if t.dim() == 0 else t

    @torch.no_grad()
    def encode(self, feats: torch.Tensor, labels: Labels = None) -> torch.Tensor:
        """Posterior means of features (B, bins, frames) -> (B, latent_dim)."""
        feats = torch.as_tensor(feats, dtype=torch.float32, device=self.device)
        mu, _ = self.model.encode(feats, self._labels(labels, len(feats)))
        return mu

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: Labels = None) -> torch.Tensor:
        """Codes (B, latent_dim) -> features (B, bins, frames) in [0, 1], on the CPU."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        return self.model.decode(z, self._labels(labels, len(z))).float().cpu()

    def to_audio(self, feats: torch.Tensor, n_iter: int | None = None) -> np.ndarray:
        """Features (..., bins, frames) -> waveforms (..., clip_samples) through the
        vocoder (see :attr:`phase_method`), else Griffin-Lim (``n_iter`` iterations)."""
        feats = torch.as_tensor(feats).cpu()
        vocoder = self.vocoder
        if vocoder is not None:
            return vocoder.to_waveform(feats).numpy()
        return F.features_to_waveform(feats, self.config, n_iter).numpy()

    def reconstruct(self, feats: torch.Tensor, labels: Labels = None) -> torch.Tensor:
        """Encode to the posterior mean and decode: (B, bins, frames) -> (B, bins, frames)."""
        return self.decode(self.encode(feats, labels), labels)

    def code_of(self, clip: Clip) -> torch.Tensor:
        """The clip's code (latent_dim,): its stored mean, else its posterior mean."""
        if clip.code is not None:
            return torch.as_tensor(clip.code, dtype=torch.float32).cpu()
        return self.encode(clip.features.unsqueeze(0), [clip.label])[0].cpu()

    def _codes(self, a: Clip, b: Clip) -> tuple[torch.Tensor, torch.Tensor]:
        return self.code_of(a), self.code_of(b)

    def clip_from_code(self, name: str, code: np.ndarray, label: str | int | None = None) -> Clip:
        """A clip known only by its code (latent_dim,), e.g. a mean stored in latents.npz:
        its features and audio are the decoded code, so it morphs without the dataset."""
        z = torch.as_tensor(np.asarray(code, dtype=np.float32))
        index = self.label_index(label)
        feats = self.decode(z.unsqueeze(0), [index] if self.conditional else None)[0]
        return Clip(name, self.to_audio(feats), feats, index, z)

    def _mixed_labels(self, a: Clip, b: Clip, t: torch.Tensor) -> torch.Tensor | None:
        """Soft labels (K, n_labels) moving from A's label to B's at fractions ``t`` (K,)."""
        if not self.conditional:
            return None
        # Two one-hot rows, not an identity matrix: n_labels x n_labels grows with the square.
        ends = torch.nn.functional.one_hot(torch.tensor([a.label, b.label]), len(self.label_names))
        t = t.unsqueeze(-1)  # (K, 1)
        return ends[0].float() * (1 - t) + ends[1].float() * t

    def interpolate(
        self,
        a: Clip,
        b: Clip,
        steps: int,
        mode: str = "lerp",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes and features along the path from clip ``a`` to clip ``b``.

        For a conditional model the label moves with the code: its one-hot weight is
        mixed linearly from A's label to B's.

        Returns:
            (codes (steps, latent_dim), features (steps, bins, frames))
        """
        za, zb = self._codes(a, b)
        path = interpolation_path(za, zb, steps, mode)  # (steps, D)
        labels = self._mixed_labels(a, b, torch.linspace(0.0, 1.0, steps))
        return path, self.decode(path, labels)

    def blend(
        self, a: Clip, b: Clip, alpha: float, mode: str = "lerp"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The point at fraction ``alpha`` (0 = A, 1 = B) of the path from ``a`` to ``b``.

        Returns:
            (code (latent_dim,), features (bins, frames))
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha} must lie in [0, 1] (0 is clip A, 1 is clip B)")
        za, zb = self._codes(a, b)
        fn = slerp if mode == "slerp" else lerp
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"mode={mode!r}: choose one of {INTERPOLATION_MODES}")
        z = fn(za.unsqueeze(0), zb.unsqueeze(0), torch.tensor([[alpha]]))  # (1, D)
        labels = self._mixed_labels(a, b, torch.tensor([alpha]))
        return z[0], self.decode(z, labels)[0]

    def morph(
        self, a: Clip, b: Clip, steps: int, mode: str = "lerp", fade_seconds: float = 0.05
    ) -> tuple[np.ndarray, np.ndarray]:
        """Audio of every step from ``a`` to ``b`` and all of them crossfaded into one clip.

        Returns:
            (steps (steps, clip_samples) peak-normalised, morph (samples,))
        """
        return self.morph_path([a, b], steps, mode, fade_seconds)

    def morph_path(
        self,
        clips: Sequence[Clip],
        steps: int,
        mode: str = "lerp",
        fade_seconds: float = 0.05,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A morph through several clips, A -> B -> C ..., as one crossfaded waveform.

        Each leg is the path of :meth:`interpolate` with ``steps`` clips; the clip where two
        legs meet is heard once, so K clips give (K - 1) * (steps - 1) + 1 steps. With two
        clips this is :meth:`morph`.

        Returns:
            (steps (n, clip_samples) peak-normalised, morph (samples,))
        """
        if len(clips) < 2:
            raise ValueError(f"a morph needs at least 2 clips, got {len(clips)}")
        legs = [self.interpolate(a, b, steps, mode)[1] for a, b in pairwise(clips)]
        feats = torch.cat([legs[0], *(leg[1:] for leg in legs[1:])])  # (n, bins, frames)
        waves = peak_normalise(self.to_audio(feats))  # (n, clip_samples)
        fade = int(fade_seconds * self.config.sample_rate)
        return waves, crossfade_concat(list(waves), fade)

    def morph_steps(
        self, clips: Sequence[Clip], steps: int, mode: str = "lerp", batch: int = 32
    ) -> Iterator[np.ndarray]:
        """The steps of :meth:`morph_path`, ``batch`` at a time, each (b, clip_samples)
        peak-normalised: a long morph is decoded and sounded without being held whole."""
        if len(clips) < 2:
            raise ValueError(f"a morph needs at least 2 clips, got {len(clips)}")
        for leg, (a, b) in enumerate(pairwise(clips)):
            za, zb = self._codes(a, b)
            path = interpolation_path(za, zb, steps, mode)  # (steps, D)
            labels = self._mixed_labels(a, b, torch.linspace(0.0, 1.0, steps))
            for start in range(1 if leg else 0, steps, batch):  # legs meet: heard once
                part = slice(start, min(start + batch, steps))
                feats = self.decode(path[part], None if labels is None else labels[part])
                yield peak_normalise(self.to_audio(feats))

    def sample(
        self,
        n: int,
        label: str | int | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` codes (:meth:`sample_codes`) and decode them.

        Returns:
            (codes (n, latent_dim), features (n, bins, frames))
        """
        z = self.sample_codes(n, label, temperature, seed)
        labels = [self.label_index(label)] * n if self.conditional else None
        return z, self.decode(z, labels)

    def sample_codes(
        self,
        n: int,
        label: str | int | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> torch.Tensor:
        """``n`` codes (n, latent_dim) from the learned prior of ``label`` (a mixture fitted
        to the training clips' codes) when the checkpoint has one, else from N(0, I); the
        draw's spread is scaled by ``temperature``."""
        if n < 1:
            raise ValueError(f"n={n}: ask for at least one sample")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be positive")
        if self.prior is not None:
            index = self.label_index(label) if self.conditional else ALL
            return torch.from_numpy(self.prior.sample(n, index, temperature, seed))
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.latent_dim, generator=gen) * temperature


def companion_dataset(
    checkpoint: Checkpoint,
    preferred: str | Path | None = None,
    same_clips: bool = False,
    load: Callable[[Path], SpectrogramSet] = load_dataset,
) -> SpectrogramSet | None:
    """A dataset to go with ``checkpoint``: ``preferred`` (the one the user picked) when it
    fits, else the one it was trained on when still on disk and fitting, else None.

    Args:
        same_clips: demand the very dataset it was trained on (its fingerprint: features,
            clip ids and order), as latents.npz rows do; else any with the same features.
        load: opens a dataset folder (the app passes its cached loader); one that raises
            ``OSError`` or ``ValueError`` is passed over.
    """
    info = checkpoint.dataset_info
    for path in (preferred, info.get("path")):
        if not path or not (Path(path) / DATASET_CONFIG).is_file():
            continue
        try:
            ds = load(Path(path))
        except (OSError, ValueError):
            continue
        if same_clips and ds.fingerprint == info.get("fingerprint"):
            return ds
        if not same_clips and ds.config.fingerprint() == checkpoint.feature_config.fingerprint():
            return ds
    return None
