"""Training as a background job: start ``python -m vae train`` detached, follow it from disk.

The app never trains in its own process: a crash of the run cannot take the app down, and
everything a page shows is read back from the checkpoint folder, so a reloaded page (a new
session, even a restarted app) re-attaches to a run in progress. Beside the checkpoint this
module keeps two files (``vae.train.JOB_FILES``):

    job.json   what was started: pid, command, dataset, epoch total, start time and, once
               a parent process saw it end, its exit code (written atomically)
    train.log  the run's stdout and stderr; its last ``error: ...`` line says why a run failed

Stop is SIGTERM: training finishes the batch in hand and exits, keeping the checkpoint of the
last finished epoch, which ``start(..., resume=True)`` continues.

The run yields to the app: it starts ``NICENESS`` steps nicer than the app, and a job that
sets no thread count (None, or 0: the Train page's default) trains on one core fewer than
this process may use, so the people moving sliders while it trains keep a core.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from vae import checkpoints as ck
from vae.folder_lock import lock_owner
from vae.job_options import JobOptions, stored_options
from vae.storage import atomic_write_json, pid_alive
from vae.train import JOB_FILES
from vae.train_config import TrainConfig

JOB_FILE, LOG_FILE = JOB_FILES
JOB_VERSION = 1
ROOT = Path(__file__).resolve().parents[1]  # on the child's PYTHONPATH: any cwd works
NICENESS = 10  # how much nicer than the app a run is (the scheduler favours the app's moves)

# Runs this process started, by folder: polled so that a finished child is reaped (a zombie
# would look alive to os.kill(pid, 0)) and its exit code is recorded in job.json.
_CHILDREN: dict[str, subprocess.Popen] = {}


@dataclass(frozen=True)
class TrainingStatus:
    """A checkpoint folder's training as read from disk.

    state: "idle" (no job here), "running", "done", "stopped" (before its epoch total) or
    "failed" (``error`` says why). ``epoch`` is the last finished epoch; ``batch`` of
    ``batches`` is the latest logged step of the epoch in progress; ``eta`` in seconds.
    ``saved``: the folder holds a checkpoint; a run stopped before its first epoch ended
    saved nothing, so it can only be started again, not resumed.
    """

    folder: Path
    state: str
    pid: int | None = None
    epoch: int = 0
    epochs: int | None = None
    batch: int | None = None
    batches: int | None = None
    seconds_per_epoch: float | None = None
    eta: float | None = None
    returncode: int | None = None
    error: str | None = None
    data: Path | None = None
    saved: bool = False
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def judge(self) -> dict[str, Any] | None:
        """The last "judge" line (``vae.judging``): best epoch, stale count, patience..."""
        lines = [r for r in self.records if r.get("event") == "judge"]
        return lines[-1] if lines else None

    @property
    def fraction(self) -> float:
        """Share of the epoch total done, counting the epoch in progress; 0 when unknown."""
        if not self.epochs:
            return 0.0
        part = self.batch / self.batches if self.batch and self.batches else 0.0
        return min(1.0, (self.epoch + part) / self.epochs)


# ------------------------------------------------------------------------------ starting


def default_threads() -> int:
    """Torch threads for a run that sets none: every core this process may use but one
    (at least one), the one left to the app that started it."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def _lower_priority(pid: int) -> None:
    """Make the run ``NICENESS`` steps nicer than this process. Set from here, just after
    exec and before the child has imported torch (so before it has threads, which inherit
    it), not in a ``preexec_fn``, which is unsafe in a threaded app such as Streamlit."""
    try:
        nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except (AttributeError, OSError):  # not POSIX, or the child is gone already
        pass


def command(data: str | Path, out: str | Path, options: JobOptions, resume: bool) -> list[str]:
    """argv of the run: ``python -m vae train DATA --out OUT [options] [--resume]``."""
    argv = [sys.executable, "-m", "vae", "train", str(data), "--out", str(out)]
    return argv + options.arguments() + (["--resume"] if resume else [])


def read_job(out: str | Path) -> dict[str, Any]:
    """The folder's job.json, or {} when there is none or it is unreadable."""
    try:
        job = json.loads((Path(out) / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return job if isinstance(job, dict) and job.get("format_version") == JOB_VERSION else {}


def _is_training(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) ``vae train`` process; a recycled pid is not."""
    if pid <= 0 or not pid_alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():  # not Linux: trust the signal check
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return state != "Z" and b"vae" in argv and b"train" in argv


def _owner(out: Path, job: dict[str, Any]) -> int | None:
    """Pid of the live run in ``out``: the lock's owner, or a job still starting up."""
    for child in list(_CHILDREN.values()):
        child.poll()  # reap whatever has ended, so it no longer looks alive
    child = _CHILDREN.get(str(out))
    if child is not None and child.returncode is None and child.pid == job.get("pid"):
        return child.pid  # ours and not ended (maybe not even exec'd yet)
    pid = lock_owner(out)
    if pid and _is_training(pid):
        return pid
    job_pid = int(job.get("pid") or 0)
    if job.get("returncode") is None and _is_training(job_pid):
        return job_pid  # before the lock (importing torch), or ``pid == 0``: starting
    return None


def start(
    data: str | Path, out: str | Path, options: JobOptions, resume: bool = False
) -> TrainingStatus:
    """Start training ``data`` into ``out`` in a detached process and return at once.

    Raises:
        ValueError: a bad option, a folder that is busy, or (without ``resume``) one that
            already holds a checkpoint; the message says what to do instead.
    """
    data, out = Path(data).absolute(), Path(out).absolute()
    options.check()
    if options.judge_every and options.judge:  # a judge that cannot hear the data: say so now
        from vae.dataset import load_dataset
        from vae.judging import load_judge_for

        load_judge_for(options.judge, load_dataset(data))
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file, not a checkpoint folder; choose another name")
    out.mkdir(parents=True, exist_ok=True)
    with _one_starter(out):
        return _start_locked(data, out, options, resume)


@contextmanager
def _one_starter(out: Path) -> Iterator[None]:
    """Hold an flock on the folder itself while starting: two sessions pressing Start at
    once must not both pass the busy check (the second would truncate the first's log and
    overwrite its job.json). The kernel drops the lock if this process dies."""
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _start_locked(data: Path, out: Path, options: JobOptions, resume: bool) -> TrainingStatus:
    pid = _owner(out, read_job(out))
    if pid is not None:
        raise ValueError(
            f"{out}: training process {pid} is already writing this checkpoint; wait for it to "
            "finish or stop it, or choose another checkpoint folder"
        )
    if not resume and ck.has_checkpoint(out):
        epoch = ck.read_config(out).get("epoch", "?")
        raise ValueError(
            f"{out}: already holds a checkpoint (epoch {epoch}); resume it to train on, or "
            "choose another checkpoint folder"
        )
    if not ck.has_checkpoint(out):  # leftovers of a run that died in epoch 1
        (out / ck.METRICS_FILE).unlink(missing_ok=True)
    threads = options.threads or default_threads()  # None or 0 ("every core"): one spared
    argv = command(data, out, replace(options, threads=threads), resume)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    with (out / LOG_FILE).open("w", encoding="utf-8") as log:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=ROOT, start_new_session=True,  # Ctrl-C on the app spares the run
        )  # fmt: skip
    _lower_priority(child.pid)
    _CHILDREN[str(out)] = child
    epochs = options.epochs
    if epochs is None and resume and ck.has_checkpoint(out):
        epochs = ck.read_config(out).get("train_config", {}).get("epochs")
    job = {"format_version": JOB_VERSION, "pid": child.pid, "command": argv, "data": str(data)}
    job["options"] = asdict(options)  # what a page that re-attaches shows (``settings``)
    job.update(epochs=epochs or TrainConfig().epochs, resume=resume, started=time.time())
    job.update(started_at=ck.utc_now(), returncode=None)
    atomic_write_json(out / JOB_FILE, job)
    return status(out)


def stop(out: str | Path) -> int | None:
    """Ask the run in ``out`` to stop (SIGTERM): it finishes the batch in hand and exits,
    keeping the checkpoint of its last finished epoch. Returns its pid, or None if none ran."""
    out = Path(out).absolute()
    job = read_job(out)
    pid = _owner(out, job)
    if pid is None:
        return None
    if job:
        atomic_write_json(out / JOB_FILE, {**job, "stop_requested": True})
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:  # ended meanwhile
        return None
    return pid


def wait(out: str | Path, timeout: float) -> TrainingStatus:
    """Poll ``status(out)`` until the run is no longer running or ``timeout`` s have passed."""
    deadline = time.monotonic() + timeout
    current = status(out)
    while current.running and time.monotonic() < deadline:
        time.sleep(0.1)
        current = status(out)
    return current


def running_under(root: str | Path) -> list[Path]:
    """Checkpoint folders under ``root`` with a live training run, by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [
        folder
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        if _owner(folder.absolute(), read_job(folder)) is not None
    ]


def settings(out: str | Path) -> JobOptions | None:
    """The options the folder's last job trains with, for a page that re-attaches to it
    (not the page's own defaults): job.json's, completed from the checkpoint's stored
    configs where a resumed job left options to them; None for a folder with neither."""
    out = Path(out)
    job, stored = read_job(out), stored_options(out)
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


def checkpoint_dataset(out: str | Path) -> Path | None:
    """The dataset folder a checkpoint was trained on (to resume on the same data)."""
    if not ck.has_checkpoint(out):
        return None
    try:
        path = ck.read_config(out).get("dataset", {}).get("path")
    except (OSError, ValueError):
        return None
    return Path(path) if path and Path(path).is_dir() else None


# ------------------------------------------------------------------------------ following


def _log_lines(out: Path) -> list[str]:
    """train.log's lines, progress-bar redraws (carriage returns) split apart."""
    try:
        text = (out / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]


def _error_line(lines: list[str]) -> str | None:
    """The run's own reason (``error: ...``), else a traceback's last line."""
    for line in reversed(lines):
        at = line.find("error: ")  # a progress bar's last redraw may precede it on its line
        if at == 0 or (at > 0 and not line[at - 1].isalnum()):
            return line[at + len("error: ") :].strip()
    if any(line.startswith("Traceback") for line in lines):
        return lines[-1]
    return None


def _ended(
    out: Path, job: dict[str, Any], epoch: int, epochs: int | None
) -> tuple[str, str | None, int | None]:
    """(state, error, exit code) of a run that is no longer alive."""
    child = _CHILDREN.get(str(out))
    code = job.get("returncode")
    if child is not None and child.pid == job.get("pid") and child.poll() is not None:
        code = child.returncode
        if job.get("returncode") != code:  # so other sessions and processes learn it too
            atomic_write_json(out / JOB_FILE, {**job, "returncode": code})
    lines = _log_lines(out)
    error = _error_line(lines)
    finished = any("checkpoint at epoch" in line for line in lines)
    if error is None and (code == 0 or (code is None and finished)):
        return ("done" if epochs is None or epoch >= epochs else "stopped"), None, code
    if error is None and job.get("stop_requested") and (code is None or code < 0):
        return "stopped", None, code  # stopped while starting up, before its handler was set
    if error is None:
        how = "unknown" if code is None else f"signal {-code}" if code < 0 else f"exit {code}"
        error = f"the training process ended without finishing ({how})"
    kept = f"; the checkpoint of epoch {epoch} is kept: resume it" if epoch else ""
    return "failed", f"{error}{kept} (log: {out / LOG_FILE})", code


def status(out: str | Path) -> TrainingStatus:
    """What the run in ``out`` is doing, read from its files (any process can ask)."""
    out = Path(out).absolute()
    job = read_job(out)
    pid = _owner(out, job)
    records = ck.read_metrics(out)
    epochs_done = [r for r in records if r.get("event") == "epoch"]
    epoch = int(epochs_done[-1]["epoch"]) if epochs_done else 0
    config: dict[str, Any] = {}
    saved = ck.has_checkpoint(out)
    if saved:
        try:
            config = ck.read_config(out)
        except (OSError, ValueError):
            config = {}
    if pid is None and "epoch" in config:  # killed mid-save: metrics may run one ahead
        epoch = min(epoch, int(config["epoch"]))
    epochs = job.get("epochs") or config.get("train_config", {}).get("epochs")
    data = job.get("data") or config.get("dataset", {}).get("path")
    steps = [r for r in records if r.get("event") == "step" and int(r.get("epoch", 0)) > epoch]
    batch = int(steps[-1]["batch"]) if steps and pid is not None else None
    batches = int(steps[-1]["batches"]) if steps and "batches" in steps[-1] else None
    per_epoch = _seconds_per_epoch(epochs_done, job.get("started"))
    common = dict(folder=out, epoch=epoch, epochs=epochs, batch=batch, batches=batches,
                  seconds_per_epoch=per_epoch, data=Path(data) if data else None,
                  saved=saved, records=records)  # fmt: skip
    if pid is not None:
        since = _stamp(epochs_done[-1]) if epochs_done else job.get("started")
        eta = _eta(epoch, epochs, batch, batches, per_epoch, job.get("started"), since)
        return TrainingStatus(state="running", pid=pid, eta=eta, **common)
    if not job:
        return TrainingStatus(state="idle", **common)
    state, error, code = _ended(out, job, epoch, epochs)
    return TrainingStatus(state=state, returncode=code, error=error, **common)


def _seconds_per_epoch(epochs_done: list[dict[str, Any]], started: float | None) -> float | None:
    """Recent seconds per epoch. An epoch record's ``seconds`` leaves out saving the
    checkpoint, which dominates tiny epochs, so the wall-clock pace between this run's recent
    records wins when it is longer (their times are whole seconds: only over 5 s or more)."""
    recent = [float(r["seconds"]) for r in epochs_done[-5:] if r.get("seconds") is not None]
    measured = sum(recent) / len(recent) if recent else None
    stamps = [t for t in map(_stamp, epochs_done[-20:]) if t is not None]
    stamps = [t for t in stamps if started is None or t >= float(started) - 1]
    if len(stamps) >= 2 and stamps[-1] - stamps[0] >= 5:
        wall = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        return max(wall, measured or 0.0)
    return measured


def _stamp(record: dict[str, Any]) -> float | None:
    """A metrics record's time as a Unix timestamp, or None."""
    try:
        return datetime.fromisoformat(record["time"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def _eta(
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
