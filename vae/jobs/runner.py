"""Training as a background job: start ``python -m vae train`` (stage 1) or ``python -m vae
sharpen`` (stage 2) detached, follow it from disk.

The app never trains in its own process: a crash of the run cannot take the app down, and
everything a page shows is read back from the checkpoint folder, so a reloaded page (a new
session, even a restarted app) re-attaches to a run in progress. Beside the checkpoint this
module keeps two files (``vae.training.train.JOB_FILES``), for whichever job the folder ran last:

    job.json   what was started: its kind ("train" or "sharpen"), pid, command, dataset,
               epoch total, start time and, once a parent process saw it end, its exit code
               (written atomically)
    train.log  the run's stdout and stderr; its last ``error: ...`` line says why a run failed

The options say which command runs: ``JobOptions`` train, ``SharpenOptions`` sharpen (the
folder's checkpoint in place). Stop is SIGTERM: either finishes the batch in hand and exits,
keeping its last finished epoch, which ``start(..., resume=True)`` continues. What the files
say is read by ``vae.jobs.files``; the readers a page needs are importable from here too.

The run yields to the app: it starts ``NICENESS`` steps nicer than the app, and a job that
sets no thread count (None, or 0: the Train page's default) trains on one core fewer than
this process may use, so the people moving sliders while it trains keep a core.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vae.jobs.files import (
    JOB_FILE,
    JOB_VERSION,
    LOG_FILE,
    error_line,
    eta,
    finished,
    job_kind,
    log_lines,
    read_job,
    seconds_per_epoch,
    sharpened,
    stage_batch,
    stage_record,
    stamp,
)
from vae.jobs.files import checkpoint_dataset as checkpoint_dataset  # the pages' names for them
from vae.jobs.files import settings as settings
from vae.jobs.files import sharpen_settings as sharpen_settings
from vae.jobs.options import JobOptions as JobOptions
from vae.jobs.options import SharpenOptions as SharpenOptions
from vae.model import checkpoints as ck
from vae.storage.files import atomic_write_json, pid_alive
from vae.storage.folder_lock import lock_owner
from vae.training.sharpen_config import SharpenConfig
from vae.training.train import refuse_sharpened
from vae.training.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]  # on the child's PYTHONPATH: any cwd works
NICENESS = 10  # how much nicer than the app a run is (the scheduler favours the app's moves)

# Runs this process started, by folder: polled so that a finished child is reaped (a zombie
# would look alive to os.kill(pid, 0)) and its exit code is recorded in job.json.
_CHILDREN: dict[str, subprocess.Popen] = {}


@dataclass(frozen=True)
class TrainingStatus:
    """A checkpoint folder's training as read from disk.

    stage: what the folder's last job runs, "train" (stage 1) or "sharpen" (stage 2; also a
    folder without a job that has been sharpened); the counts below are that stage's.
    state: "idle" (no job here), "running", "done", "stopped" (before its epoch total) or
    "failed" (``error`` says why). ``epoch`` is the last finished epoch (of stage 2: the
    stage epoch); ``batch`` of ``batches`` is the latest logged step of the epoch in
    progress; ``eta`` in seconds. ``saved``: the folder holds a checkpoint; a run stopped
    before its first epoch ended saved nothing, so it can only be started again, not
    resumed. ``sharpened``: the stage epochs of stage 2 the folder holds (0: none).
    """

    folder: Path
    state: str
    stage: str = "train"
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
    sharpened: int = 0
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def judge(self) -> dict[str, Any] | None:
        """The last "judge" line (``vae.training.judge_in_loop``): best epoch, stale count,
        patience..."""
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


def command(
    data: str | Path, out: str | Path, options: JobOptions | SharpenOptions, resume: bool
) -> list[str]:
    """argv of the run: ``python -m vae train DATA --out OUT [options] [--resume]``, or for
    SharpenOptions ``python -m vae sharpen OUT --data DATA [options] [--resume]``."""
    if options.COMMAND == "sharpen":
        argv = [sys.executable, "-m", "vae", "sharpen", str(out), "--data", str(data)]
    else:
        argv = [sys.executable, "-m", "vae", "train", str(data), "--out", str(out)]
    return argv + options.arguments() + (["--resume"] if resume else [])


def _is_training(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) ``vae train`` or ``vae sharpen`` process; a
    recycled pid is not."""
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
    return state != "Z" and b"vae" in argv and (b"train" in argv or b"sharpen" in argv)


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
    data: str | Path,
    out: str | Path,
    options: JobOptions | SharpenOptions,
    resume: bool = False,
) -> TrainingStatus:
    """Start training ``data`` into ``out`` in a detached process and return at once:
    stage 1 for JobOptions, stage 2 (sharpening the checkpoint in ``out``) for SharpenOptions.

    Raises:
        ValueError: a bad option, a folder that is busy, or (without ``resume``) one that
            already holds a checkpoint (stage 1) or a begun stage 2; for stage 2 a folder
            without a checkpoint; for stage 1's resume a sharpened one. The message says
            what to do instead.
    """
    data, out = Path(data).absolute(), Path(out).absolute()
    options.check()
    sharpening = options.COMMAND == "sharpen"
    judged = options.judge if sharpening else options.judge_every and options.judge
    if judged:  # a judge that cannot hear the data: say so now
        from vae.data.dataset import load_dataset
        from vae.training.judge_in_loop import load_judge_for

        load_judge_for(options.judge, load_dataset(data))
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file, not a checkpoint folder; choose another name")
    if sharpening and not ck.has_checkpoint(out):
        raise ValueError(f"{out}: holds no checkpoint to sharpen; train one there first")
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


def _start_locked(
    data: Path, out: Path, options: JobOptions | SharpenOptions, resume: bool
) -> TrainingStatus:
    pid = _owner(out, read_job(out))
    if pid is not None:
        raise ValueError(
            f"{out}: training process {pid} is already writing this checkpoint; wait for it to "
            "finish or stop it, or choose another checkpoint folder"
        )
    if options.COMMAND == "sharpen":
        epochs = _sharpen_checks(out, options, resume)
    else:
        epochs = _train_checks(out, options, resume)
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
    job = {"format_version": JOB_VERSION, "kind": options.COMMAND, "pid": child.pid,
           "command": argv, "data": str(data)}  # fmt: skip
    job["options"] = asdict(options)  # what a page that re-attaches shows (``settings``)
    job.update(epochs=epochs, resume=resume, started=time.time())
    job.update(started_at=ck.utc_now(), returncode=None)
    atomic_write_json(out / JOB_FILE, job)
    return status(out)


def _train_checks(out: Path, options: JobOptions, resume: bool) -> int:
    """Refuse a stage-1 job the folder cannot take; its epoch total."""
    if resume and ck.has_checkpoint(out):
        refuse_sharpened(out)  # now, rather than as a run that fails a second later
    if not resume and ck.has_checkpoint(out):
        epoch = ck.read_config(out).get("epoch", "?")
        raise ValueError(
            f"{out}: already holds a checkpoint (epoch {epoch}); resume it to train on, or "
            "choose another checkpoint folder"
        )
    if not ck.has_checkpoint(out):  # leftovers of a run that died in epoch 1
        (out / ck.METRICS_FILE).unlink(missing_ok=True)
    epochs = options.epochs
    if epochs is None and resume and ck.has_checkpoint(out):
        epochs = ck.read_config(out).get("train_config", {}).get("epochs")
    return int(epochs or TrainConfig().epochs)


def _sharpen_checks(out: Path, options: SharpenOptions, resume: bool) -> int:
    """Refuse a stage-2 job the folder cannot take; its stage epoch total."""
    record = stage_record(out)
    if record is not None and not resume:
        raise ValueError(
            f"{out}: already sharpened for {record.get('stage_epoch', '?')} stage epochs; "
            "resume to sharpen on (with more epochs), or train a new checkpoint"
        )
    epochs = options.epochs
    if epochs is None and record is not None:
        epochs = record.get("config", {}).get("epochs")
    return int(epochs or SharpenConfig().epochs)


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


# ------------------------------------------------------------------------------ following


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
    lines = log_lines(out / LOG_FILE)
    error = error_line(lines)
    if error is None and (code == 0 or (code is None and finished(job_kind(job), lines))):
        return ("done" if epochs is None or epoch >= epochs else "stopped"), None, code
    if error is None and job.get("stop_requested") and (code is None or code < 0):
        return "stopped", None, code  # stopped while starting up, before its handler was set
    if error is None:
        how = "unknown" if code is None else f"signal {-code}" if code < 0 else f"exit {code}"
        error = f"the training process ended without finishing ({how})"
    what = "stage epoch" if job_kind(job) == "sharpen" else "epoch"
    kept = f"; the checkpoint of {what} {epoch} is kept: resume it" if epoch else ""
    return "failed", f"{error}{kept} (log: {out / LOG_FILE})", code


def status(out: str | Path) -> TrainingStatus:
    """What the run in ``out`` is doing, read from its files (any process can ask)."""
    out = Path(out).absolute()
    job = read_job(out)
    pid = _owner(out, job)
    records = ck.read_metrics(out)
    config: dict[str, Any] = {}
    saved = ck.has_checkpoint(out)
    if saved:
        try:
            config = ck.read_config(out)
        except (OSError, ValueError):
            config = {}
    record = stage_record(out)
    stage_epochs = sharpened(records, record, pid is not None)
    stage = job_kind(job) if job else "sharpen" if stage_epochs else "train"
    if stage == "sharpen":
        done = [r for r in records if r.get("event") == "sharpen"]
        epoch = stage_epochs
        epochs = job.get("epochs") or (record or {}).get("config", {}).get("epochs")
        batch, batches = stage_batch(out / LOG_FILE, epoch + 1) if pid is not None else (None, None)
    else:
        done = [r for r in records if r.get("event") == "epoch"]
        epoch = int(done[-1]["epoch"]) if done else 0
        if pid is None and "epoch" in config:  # killed mid-save: metrics may run one ahead
            epoch = min(epoch, int(config["epoch"]))
        epochs = job.get("epochs") or config.get("train_config", {}).get("epochs")
        steps = [r for r in records if r.get("event") == "step" and int(r.get("epoch", 0)) > epoch]
        batch = int(steps[-1]["batch"]) if steps and pid is not None else None
        batches = int(steps[-1]["batches"]) if steps and "batches" in steps[-1] else None
    data = job.get("data") or config.get("dataset", {}).get("path")
    per_epoch = seconds_per_epoch(done, job.get("started"))
    common = dict(folder=out, stage=stage, epoch=epoch, epochs=epochs, batch=batch,
                  batches=batches, seconds_per_epoch=per_epoch, data=Path(data) if data else None,
                  saved=saved, sharpened=stage_epochs, records=records)  # fmt: skip
    if pid is not None:
        # the last epoch's end, or this job's start when that came later (a resumed run)
        stamps = [t for t in (stamp(done[-1]) if done else None, job.get("started")) if t]
        since = max(stamps) if stamps else None
        left = eta(epoch, epochs, batch, batches, per_epoch, job.get("started"), since)
        return TrainingStatus(state="running", pid=pid, eta=left, **common)
    if not job:
        return TrainingStatus(state="idle", **common)
    state, error, code = _ended(out, job, epoch, epochs)
    return TrainingStatus(state=state, returncode=code, error=error, **common)
