"""What a job's files say, read by any process: job.json (``vae.jobs.runner`` writes it), the
options a folder's stage 1 and stage 2 ran with, the log (the error that ended a run, the line
of a finished command, stage 2's progress bar), the pace of its epochs and the time left.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from vae.jobs.options import JobOptions, SharpenOptions, stored_options
from vae.model import checkpoints as ck
from vae.training.train import JOB_FILES, STAGE_FILES

JOB_FILE, LOG_FILE = JOB_FILES
JOB_VERSION = 1
STAGE_RECORD = STAGE_FILES[1]  # sharpen.json: the stage's settings and stage epochs kept
COMMANDS = ("train", "sharpen")  # the ``python -m vae`` commands a job runs (job.json's kind)

# What each command prints last when it has finished its epochs (a stopped one too).
FINISHED = {
    "train": re.compile(r"checkpoint at epoch \d+ -> "),
    "sharpen": re.compile(r"sharpened \d+ stage epochs -> "),
}
# The stage's progress bar in train.log (``vae.cli.train.EpochBars``, tqdm's format):
# "sharpen 2/8:  40%|####      | 4/10 [00:01<00:02,  3.20batch/s]".
STAGE_BAR = re.compile(r"^sharpen (\d+)/\d+:.*\|\s*(\d+)/(\d+) \[")


def log_lines(log_file: Path, tail: int | None = None) -> list[str]:
    """A job's log lines (of its last ``tail`` bytes), progress-bar redraws (carriage
    returns) split apart."""
    try:
        with log_file.open("rb") as log:
            if tail is not None:
                log.seek(max(0, log.seek(0, os.SEEK_END) - tail))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]


def error_line(lines: list[str]) -> str | None:
    """The run's own reason (``error: ...``), else a traceback's last line."""
    for line in reversed(lines):
        at = line.find("error: ")  # a progress bar's last redraw may precede it on its line
        if at == 0 or (at > 0 and not line[at - 1].isalnum()):
            return line[at + len("error: ") :].strip()
    if any(line.startswith("Traceback") for line in lines):
        return lines[-1]
    return None


def finished(command: str, lines: list[str]) -> bool:
    """Whether a log's ``lines`` show ``command`` ("train" or "sharpen") ended by itself
    (all its epochs, or stopped), saying where its checkpoint is."""
    return any(FINISHED[command].search(line) for line in lines)


def stage_batch(log_file: Path, epoch: int) -> tuple[int | None, int | None]:
    """(batch, batches) of stage epoch ``epoch`` in progress, from its progress bar's last
    redraw in train.log (stage 2 writes no step lines to metrics.jsonl); (None, None)
    before the bar shows (half a second into the epoch)."""
    for line in reversed(log_lines(log_file, tail=1 << 14)):
        bar = STAGE_BAR.search(line)
        if bar is not None:
            if int(bar[1]) != epoch:
                break  # the latest bar is another epoch's: this one's has not shown yet
            return int(bar[2]), int(bar[3])
    return None, None


def seconds_per_epoch(epochs_done: list[dict[str, Any]], started: float | None) -> float | None:
    """Recent seconds per epoch. An epoch record's ``seconds`` leaves out saving the
    checkpoint, which dominates tiny epochs, so the wall-clock pace between this run's recent
    records wins when it is longer (their times are whole seconds: only over 5 s or more)."""
    recent = [float(r["seconds"]) for r in epochs_done[-5:] if r.get("seconds") is not None]
    measured = sum(recent) / len(recent) if recent else None
    stamps = [t for t in map(stamp, epochs_done[-20:]) if t is not None]
    stamps = [t for t in stamps if started is None or t >= float(started) - 1]
    if len(stamps) >= 2 and stamps[-1] - stamps[0] >= 5:
        wall = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        return max(wall, measured or 0.0)
    return measured


def stamp(record: dict[str, Any]) -> float | None:
    """A metrics record's time as a Unix timestamp, or None."""
    try:
        return datetime.fromisoformat(record["time"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def eta(
    epoch: int,
    epochs: int | None,
    batch: int | None,
    batches: int | None,
    per_epoch: float | None,
    started: float | None,
    epoch_began: float | None = None,
    now: float | None = None,
) -> float | None:
    """Seconds left. Once an epoch's wall-clock pace is known (it includes validation and
    saving, which follow the last batch): epochs to go times that pace, less the time the
    current epoch has run, so it counts down between progress lines rather than jumping at
    each and does not sit at zero while the last epoch saves. In epoch 1: the pace so far.
    0 means "any moment now" (the epoch runs longer than the recent ones)."""
    if not epochs:
        return None
    now = time.time() if now is None else now
    if per_epoch is not None and math.isfinite(per_epoch):
        running = max(0.0, now - epoch_began) if epoch_began is not None else 0.0
        return max(0.0, (epochs - epoch) * per_epoch - running)
    part = batch / batches if batch and batches else 0.0
    if not part or started is None:
        return None
    per_epoch = (now - float(started)) / part  # includes start-up: an upper bound
    return max(0.0, epochs - epoch - part) * per_epoch


# ------------------------------------------------------------------------ job.json, options


def read_job(out: str | Path) -> dict[str, Any]:
    """The folder's job.json, or {} when there is none or it is unreadable."""
    try:
        job = json.loads((Path(out) / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return job if isinstance(job, dict) and job.get("format_version") == JOB_VERSION else {}


def job_kind(job: dict[str, Any]) -> str:
    """The command of a job.json (one written before there were two: train)."""
    return job.get("kind") if job.get("kind") in COMMANDS else "train"


def stage_record(out: Path) -> dict[str, Any] | None:
    """The folder's sharpen.json (stage 2's settings and stage epochs kept), or None."""
    if not (out / STAGE_RECORD).is_file():
        return None
    try:
        record = ck.read_json(out / STAGE_RECORD)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def settings(out: str | Path) -> JobOptions | None:
    """The stage-1 options the folder's last job trains with, for a page that re-attaches
    to it (not the page's own defaults): job.json's, completed from the checkpoint's stored
    configs where a resumed job left options to them; None for a folder with neither. A
    stage-2 job's options are ``sharpen_settings``': here only the stored ones count."""
    out = Path(out)
    job, stored = read_job(out), stored_options(out)
    if job_kind(job) != "train":
        job = {}
    if not job and stored is None:
        return None
    given = job.get("options") if isinstance(job.get("options"), dict) else {}
    names = {f.name for f in fields(JobOptions)}
    # None and False (``conditional`` of a resume) leave the value to the checkpoint.
    merged = {**(stored or {}), **{k: v for k, v in given.items()
                                   if k in names and v is not None and v is not False}}  # fmt: skip
    if job.get("epochs"):
        merged["epochs"] = int(job["epochs"])
    if merged.get("channels") is not None:
        merged["channels"] = tuple(int(c) for c in merged["channels"])
    return JobOptions(**merged)


def sharpen_settings(out: str | Path) -> SharpenOptions | None:
    """The stage-2 options of the folder: its running or last sharpen job's (job.json),
    completed from the stage's stored settings (sharpen.json) where a resumed job left them
    out; None for a folder never sharpened nor asked to be."""
    out = Path(out)
    job, record = read_job(out), stage_record(out)
    if job_kind(job) != "sharpen":
        job = {}
    given, stored = job.get("options"), (record or {}).get("config")
    given, stored = (v if isinstance(v, dict) else None for v in (given, stored))
    if given is None and stored is None:
        return None
    # None leaves the value to sharpen.json (a resumed job's options not given)
    merged = {**(stored or {}), **{k: v for k, v in (given or {}).items() if v is not None}}
    if job.get("epochs"):
        merged["epochs"] = int(job["epochs"])
    names = {f.name for f in fields(SharpenOptions)}
    return SharpenOptions(**{k: v for k, v in merged.items() if k in names})


def checkpoint_dataset(out: str | Path) -> Path | None:
    """The dataset folder a checkpoint was trained on (to resume on the same data)."""
    if not ck.has_checkpoint(out):
        return None
    try:
        path = ck.read_config(out).get("dataset", {}).get("path")
    except (OSError, ValueError):
        return None
    return Path(path) if path and Path(path).is_dir() else None


def sharpened(records: list[dict[str, Any]], record: dict[str, Any] | None, running: bool) -> int:
    """Stage epochs of stage 2 in the folder: its last "sharpen" line's, but no more than
    sharpen.json keeps once no stage runs (a kill mid-save leaves a line the next resume
    drops)."""
    lines = [r for r in records if r.get("event") == "sharpen"]
    count = int(lines[-1].get("stage_epoch", 0)) if lines else 0
    if not running:
        count = min(count, int((record or {}).get("stage_epoch", 0)))
    return count
