"""Stage 2: sharpen a trained VAE's decoder against a spectrogram critic.

A 16-number code cannot carry a clip's fine structure to the bin, so a decoder trained only
to copy clips draws their average: harmonics and formant edges smeared to about half of
real clips'. This stage (after RAVE's second stage and the VAE-GAN) changes the target from
"copy the clip" to "sound real": the encoder, the label embedding and the learned prior stay
frozen (the map, the sliders' directions and the Explore picks keep their meaning), and the
decoder trains against :class:`vae.model.critic.SpectrogramCritic` with a hinge loss, feature
matching and the multi-resolution spectral term (weighted as HiFi-GAN's: the spectral
term about twice the adversarial one, feature matching x2).

The critic sees decoded reconstructions, **prior samples** (the learned prior, as the app
draws them) and **points along interpolations** (with mixed labels), so samples, sliders
and morphs sharpen too, not only reconstructions. Both see random time shifts (the same
family for real and fake clips) against a critic that memorises 3,000 clips.

The checkpoint folder stays a checkpoint after every stage epoch: a "sharpen" line in
metrics.jsonl, then ``sharpen.pt`` (decoder, critic, both optimizers: what resume needs),
then model.pt and config.json whose epoch counts on from stage 1, then the judge (when
given) scores it and keeps the best epoch of either stage in ``best/``. A kill loses at most
the stage epoch in progress; everything random is a function of (seed, epoch), so a resumed
stage repeats an uninterrupted one. ``sharpen.json`` records the stage's settings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vae.data.batches import FeatureFile, FeatureRows
from vae.data.dataset import FEATURES_FILE, SpectrogramSet, load_dataset
from vae.harness import Stop, append_line, cpu_count, run_epochs, save_state, torch_threads
from vae.model import checkpoints as ck
from vae.model.conv_vae import ConvVAE
from vae.model.critic import (
    CriticConfig,
    SpectrogramCritic,
    critic_loss,
    feature_matching,
    generator_loss,
    shift_time,
)
from vae.model.prior import ALL, LatentPrior, read_prior
from vae.model.spectral_loss import multiscale_per_bin
from vae.progress import OnEvent, ignore_event
from vae.storage.files import atomic_write_json
from vae.storage.folder_lock import FolderLock
from vae.storage.safe_load import guarded_torch_load
from vae.training.judge_in_loop import Judging, load_judge_for
from vae.training.sharpen_config import SharpenConfig
from vae.training.train import STAGE_FILES
from vae.training.train_config import resolve_device

STATE_FILE, RECORD_FILE = STAGE_FILES  # sharpen.pt, sharpen.json: train knows them as ours
STAGE = "sharpen"  # the metrics.jsonl event of a stage epoch
STAGE_FORMAT_VERSION = 1


@dataclass
class SharpenResult:
    """What a :func:`sharpen` call did: the stage epochs done, this call's records."""

    out_dir: Path
    stage_epoch: int
    history: list[dict[str, Any]]
    stopped: bool
    seconds: float


def stage_seed(seed: int, epoch: int) -> int:
    """Seed of everything random in stage epoch ``epoch``: a function of (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch, 2]).generate_state(1)[0])


class Sharpening:
    """A stage in progress: the frozen encoder, the decoder and the critic, their optimizers,
    the data, and the folder it keeps current."""

    def __init__(self, out: Path, ds: SpectrogramSet, cfg: SharpenConfig, emit: OnEvent):
        self.out, self.ds, self.cfg, self.emit = out, ds, cfg, emit
        self.device = resolve_device(cfg.device)
        self.ckpt = ck.load_checkpoint(out, device=self.device)
        ck.check_compatible(self.ckpt, ds.config, f"dataset {ds.root}")
        self.model: ConvVAE = self.ckpt.model
        self.conditional = self.model.config.conditional
        self.prior: LatentPrior | None = read_prior(out, self.model.config.latent_dim)
        record = _read_record(out)
        self.base_epoch = int(record["base_epoch"]) if record else self.ckpt.epoch
        torch.manual_seed(cfg.seed)
        critic_config = CriticConfig(n_labels=self.model.config.n_labels)
        self.critic = SpectrogramCritic(critic_config).to(self.device)
        self.decoder_params = [
            *self.model.from_code.parameters(),
            *self.model.decoder.parameters(),
        ]
        for p in self.model.parameters():
            p.requires_grad_(False)
        for p in self.decoder_params:
            p.requires_grad_(True)
        self.opt_g = torch.optim.Adam(self.decoder_params, lr=cfg.lr, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, betas=(0.5, 0.9))
        self.stage_epoch = 0
        if record is not None:
            self._restore(record)
        else:  # lines of a first stage epoch killed before its state was saved
            ck.trim_metrics(out, self.ckpt.epoch)
        train_rows, val_rows = ds.split_indices("train"), ds.split_indices("val")
        if len(train_rows) < cfg.batch_size:
            raise ValueError(
                f"{ds.root}: {len(train_rows)} training clips, fewer than --batch-size "
                f"{cfg.batch_size}; lower it"
            )
        # rows read from disk a batch at a time, as stage 1 does: a corpus larger than memory
        self.features = FeatureFile(Path(ds.root) / FEATURES_FILE)
        train_rows, val_rows = np.sort(train_rows), np.sort(val_rows)
        self.x = FeatureRows(self.features, train_rows)
        self.y = torch.from_numpy(ds.label_indices[train_rows].astype(np.int64))
        self.x_val = FeatureRows(self.features, val_rows)
        self.y_val = torch.from_numpy(ds.label_indices[val_rows].astype(np.int64))
        self.judging: Judging | None = None
        if cfg.judge:
            judge = load_judge_for(cfg.judge, ds)
            self.judging = Judging(judge, ds, out, emit=emit)
            self.judging.recover()

    # ------------------------------------------------------------------ resume

    def _restore(self, record: dict[str, Any]) -> None:
        """The decoder, critic and optimizers of the last finished stage epoch (sharpen.pt),
        and model.pt rewritten from them when a kill came between the two files."""
        file = self.out / STATE_FILE
        # the decoder, the critic and two Adam states: a few times model.pt at most
        bound = 8 * (self.out / ck.WEIGHTS_FILE).stat().st_size + (64 << 20)
        state = guarded_torch_load(
            file, self.device, bound, "delete it to sharpen afresh", ck.CheckpointError
        )
        if not isinstance(state, dict) or state.get("format_version") != STAGE_FORMAT_VERSION:
            raise ck.CheckpointError(f"{file}: not a stage-2 state of this version; "
                                     "delete it to sharpen afresh")  # fmt: skip
        self.stage_epoch = int(state["stage_epoch"])
        self.model.load_state_dict(state["model"])
        self.critic.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for group in self.opt_g.param_groups:
            group["lr"] = self.cfg.lr
        for group in self.opt_d.param_groups:
            group["lr"] = self.cfg.critic_lr
        dropped = ck.trim_metrics(self.out, self.base_epoch + self.stage_epoch)
        if dropped:
            note = f"dropped {dropped} metrics lines after stage epoch {self.stage_epoch}"
            self.emit({"event": "note", "message": note})
        if self.ckpt.epoch != self.base_epoch + self.stage_epoch:
            self._save_model()

    # ------------------------------------------------------------------ one epoch

    def _labels(self, y: torch.Tensor) -> torch.Tensor | None:
        return y.to(self.device) if self.conditional else None

    def _weights(self, y: torch.Tensor) -> torch.Tensor | None:
        """Labels (B,) as one-hot label weights (B, n_labels) for the critic, or None."""
        if not self.conditional:
            return None
        return torch.nn.functional.one_hot(y, self.model.config.n_labels).float().to(self.device)

    def _prior_codes(self, labels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Codes (n, D) drawn as the app draws samples: the learned prior of each label
        (N(0, I) without one)."""
        n, dim = len(labels), self.model.config.latent_dim
        if self.prior is None:
            return torch.from_numpy(rng.standard_normal((n, dim)).astype(np.float32))
        codes = np.zeros((n, dim), np.float32)
        for label in np.unique(labels.numpy()):
            mine = labels.numpy() == label
            key = int(label) if self.conditional else ALL
            seed = int(rng.integers(2**63))  # a function of the epoch's seed: resumable
            codes[mine] = self.prior.sample(int(mine.sum()), key, 1.0, seed=seed)
        return torch.from_numpy(codes)

    def _fakes(
        self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Decoded (reconstructions (B, ...), prior samples and interpolation points
        (B, ...) together) and the label weights the critic sees for the latter, or None."""
        with torch.no_grad():
            mu, _ = self.model.encode(x, self._labels(y))  # (B, D), frozen
        recon = self.model.decode(mu, self._labels(y))
        half = max(1, len(x) // 2)
        # prior samples of random labels (of the dataset's label frequencies: the batch's)
        drawn = y[torch.randint(0, len(y), (half,), generator=gen)]
        z_prior = self._prior_codes(drawn, rng).to(self.device)
        # points between two clips of the batch, with their labels mixed the same way
        partner = torch.randint(0, len(y), (half,), generator=gen)
        alpha = torch.rand(half, 1, generator=gen).to(self.device)  # (half, 1)
        z_mix = (1 - alpha) * mu[:half] + alpha * mu[partner]
        weights = None
        if self.conditional:
            w_a, w_b = self._weights(y[:half]), self._weights(y[partner])
            mix = (1 - alpha) * w_a + alpha * w_b  # (half, n_labels)
            weights = torch.cat([self._weights(drawn), mix])
            others = self.model.decode(torch.cat([z_prior, z_mix]), weights)
        else:
            others = self.model.decode(torch.cat([z_prior, z_mix]))
        return recon, others, weights

    def train_epoch(self, epoch: int, stop: Callable[[], bool]) -> dict[str, float] | None:
        """One pass over the train split (stage epoch ``epoch``): mean losses, or None when
        stopped."""
        cfg, seed = self.cfg, stage_seed(self.cfg.seed, epoch)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        order = torch.randperm(len(self.x), generator=gen)
        steps = len(self.x) // cfg.batch_size  # whole batches: the critic's statistics
        sums = dict.fromkeys(("critic", "adversarial", "features", "spectral"), 0.0)
        top_db = self.ds.config.top_db
        self.critic.train()
        for b in range(steps):
            if stop():
                return None
            rows = order[b * cfg.batch_size : (b + 1) * cfg.batch_size].sort().values
            x, y = self.x[rows.numpy()].to(self.device), self.y[rows]
            recon, others, mixed = self._fakes(x, y, gen, rng)
            real_w = self._weights(y)
            fake_w = torch.cat([real_w, mixed]) if real_w is not None else None
            fakes = torch.cat([recon, others])  # (2B, bins, frames)
            x_seen = shift_time(x, cfg.shift_frames, gen)
            fakes_seen = shift_time(fakes, cfg.shift_frames, gen)
            # the critic: real clips up, the decoder's down
            d_loss = critic_loss(
                self.critic(x_seen, real_w), self.critic(fakes_seen.detach(), fake_w)
            )
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            # the decoder: pass the critic, land where real clips do, keep the spectrum
            verdict = self.critic(fakes_seen, fake_w)
            with torch.no_grad():
                real_maps = self.critic(x_seen, real_w)
            recon_maps = [(logits[: len(x)], [m[: len(x)] for m in maps])
                          for logits, maps in verdict]  # fmt: skip
            adversarial = generator_loss(verdict)
            features = feature_matching(real_maps, recon_maps)
            spectral = multiscale_per_bin(recon, x, top_db)
            g_loss = (
                cfg.adversarial_weight * adversarial
                + cfg.feature_weight * features
                + cfg.spectral_weight * spectral
            )
            values = [d_loss.item(), adversarial.item(), features.item(), spectral.item()]
            if not all(math.isfinite(v) for v in values):
                raise RuntimeError(
                    f"stage 2 diverged at epoch {epoch}, batch {b + 1} (losses {values}); "
                    f"the checkpoint of stage epoch {epoch - 1} is kept: resume with a lower "
                    f"--lr (now {cfg.lr}) or --critic-lr (now {cfg.critic_lr})"
                )
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
            for key, value in zip(sums, values, strict=True):
                sums[key] += value
            self.emit({"event": "batch", "epoch": epoch, "batch": b + 1, "batches": steps,
                       "loss": float(g_loss.item()), "stage": STAGE})  # fmt: skip
        return {key: value / steps for key, value in sums.items()}

    @torch.no_grad()
    def validate(self) -> float | None:
        """The spectral term of the val split's reconstructions (None without val clips)."""
        if not len(self.x_val):
            return None
        total = 0.0
        for i in range(0, len(self.x_val), 64):
            x, y = self.x_val[i : i + 64].to(self.device), self.y_val[i : i + 64]
            mu, _ = self.model.encode(x, self._labels(y))
            recon = self.model.decode(mu, self._labels(y))
            total += float(multiscale_per_bin(recon, x, self.ds.config.top_db)) * len(x)
        return total / len(self.x_val)

    # ------------------------------------------------------------------ saving

    def _save_model(self) -> None:
        ck.save_checkpoint(
            self.out,
            model=self.model,
            optimizer=None,
            epoch=self.base_epoch + self.stage_epoch,
            feature_config=self.ckpt.feature_config,
            model_config=self.model.config,
            train_config=self.ckpt.train_config,
            label_names=self.ckpt.label_names,
            dataset_info=self.ckpt.dataset_info,
            extra={"stage": STAGE, "stage_epoch": self.stage_epoch},
        )

    def save(self, record: dict[str, Any]) -> None:
        """The stage epoch's metrics line, sharpen.pt, sharpen.json, then model.pt."""
        append_line(self.out / ck.METRICS_FILE, record)
        state = {
            "format_version": STAGE_FORMAT_VERSION,
            "stage_epoch": self.stage_epoch,
            "model": self.model.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }
        save_state(self.out / STATE_FILE, state)
        atomic_write_json(
            self.out / RECORD_FILE,
            {
                "format_version": STAGE_FORMAT_VERSION,
                "base_epoch": self.base_epoch,
                "stage_epoch": self.stage_epoch,
                "config": self.cfg.to_dict(),
                "updated": ck.utc_now(),
            },
        )
        self._save_model()

    def run(self, stop: Callable[[], bool]) -> tuple[list[dict[str, Any]], bool]:
        """Train up to ``cfg.epochs`` stage epochs; (this call's records, stopped)."""
        self.emit({"event": "start", "stage": STAGE, "epoch": self.stage_epoch + 1,
                   "epochs": self.cfg.epochs, "base_epoch": self.base_epoch,
                   "device": str(self.device)})  # fmt: skip
        run = run_epochs(
            self.stage_epoch + 1,
            self.cfg.epochs,
            lambda epoch: self.train_epoch(epoch, stop),
            self.finish_epoch,
            emit=self.emit,
            stopped=lambda done: f"stopped; stage epoch {done} is kept in {self.out}",
            after=self.judge,
        )
        return run.history, run.stopped

    def finish_epoch(self, epoch: int, losses: dict[str, float], t0: float) -> dict[str, Any]:
        """Validate and save stage epoch ``epoch``; returns its metrics record."""
        self.stage_epoch = epoch
        record = {"event": STAGE, "epoch": self.base_epoch + epoch, "stage_epoch": epoch,
                  "stage_epochs": self.cfg.epochs, **losses, "val_spectral": self.validate(),
                  "seconds": time.perf_counter() - t0, "time": ck.utc_now()}  # fmt: skip
        self.save(record)
        return record

    def judge(self, epoch: int) -> None:
        """The judge (when given) scores stage epoch ``epoch``; it never stops stage 2."""
        if self.judging is not None:
            self.judging.after_epoch(self.base_epoch + epoch)

    def close(self) -> None:
        self.features.close()


def _read_record(out: Path) -> dict[str, Any] | None:
    """sharpen.json of a stage begun in ``out`` (None when there is none)."""
    file = out / RECORD_FILE
    if not file.is_file() or not (out / STATE_FILE).is_file():
        return None
    record = ck.read_json(file)
    version = record.get("format_version")
    if version != STAGE_FORMAT_VERSION:
        raise ck.CheckpointError(
            f"{file}: format_version {version}, this version reads {STAGE_FORMAT_VERSION}"
        )
    return record


def sharpen(
    ckpt_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    config: SharpenConfig | None = None,
    resume: bool = False,
    progress: OnEvent | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SharpenResult:
    """Sharpen the decoder of the checkpoint in ``ckpt_dir`` (stage 2), in place.

    Args:
        data_dir: the dataset it was trained on (default: the path its config records).
        config: how to train; None means defaults, or on resume the stored settings.
        resume: continue a stage begun before; without it a begun stage is refused.
        progress: called with event dicts ("start", "batch", "sharpen", "judge", "note",
            "stopped", "done").
        should_stop: polled between batches; True stops, keeping the last stage epoch.
            SIGTERM does the same in the main thread.
    Raises:
        ValueError: a missing or busy checkpoint, other data, a stage begun without
            ``resume``, bad settings.
    """
    started = time.perf_counter()
    out, emit = Path(ckpt_dir), progress or ignore_event
    stop = Stop(should_stop)
    if not ck.has_checkpoint(out):
        raise ValueError(
            f"{out}: no checkpoint to sharpen; train one first with "
            f"`python -m vae train DATA --out {out}`"
        )
    with FolderLock(out):
        for tmp in out.glob(".*.tmp"):  # writers killed mid-write; we hold the lock
            tmp.unlink(missing_ok=True)
        record = _read_record(out)
        if record is not None and not resume:
            raise ValueError(
                f"{out}: already sharpened for {record['stage_epoch']} stage epochs; pass "
                "--resume to continue (with more --epochs)"
            )
        if config is None:
            config = SharpenConfig.from_dict(record["config"]) if record else SharpenConfig()
        ds = _dataset_for(out, data_dir)
        threads = config.threads or cpu_count()
        with torch_threads(threads), stop.on_sigterm():
            stage = Sharpening(out, ds, config, emit)
            if stage.stage_epoch >= config.epochs:
                emit({"event": "note", "message": f"already sharpened {stage.stage_epoch} "
                      f"of {config.epochs} stage epochs"})  # fmt: skip
            try:
                history, stopped = stage.run(stop)
            finally:
                stage.close()
    seconds = time.perf_counter() - started
    emit({"event": "done", "epoch": stage.stage_epoch, "stopped": stopped, "seconds": seconds})
    return SharpenResult(out, stage.stage_epoch, history, stopped, seconds)


def _dataset_for(out: Path, data_dir: str | Path | None) -> SpectrogramSet:
    """The dataset the checkpoint in ``out`` was trained on: ``data_dir``, or its recorded
    path; CheckpointError when the clips differ (the frozen encoder's codes are of those)."""
    info = ck.read_config(out).get("dataset", {})
    path = Path(data_dir) if data_dir is not None else Path(str(info.get("path", "")))
    if data_dir is None and not path.is_dir():
        raise ValueError(
            f"{out}: its dataset {path} is not on disk; pass the dataset it was trained on"
        )
    ds = load_dataset(path)
    if ds.fingerprint != info.get("fingerprint"):
        raise ck.CheckpointError(
            f"checkpoint {out} was trained on dataset {info.get('path')} (fingerprint "
            f"{info.get('fingerprint')}); {path} is {ds.fingerprint}: sharpen with the "
            "same dataset"
        )
    return ds
