"""Training as a background job (vae.jobs.runner) with real ``python -m vae train`` and ``python -m
vae
sharpen`` subprocesses on the tiny demo dataset: start, follow, refuse a second run, stop,
resume, report a failed run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from vae.jobs import runner as jobs
from vae.model import checkpoints as ck
from vae.storage.folder_lock import lock_owner

TINY = jobs.JobOptions(channels=(8, 16), latent_dim=4, batch_size=8)
LONG = jobs.JobOptions(epochs=100_000, channels=(8, 16), latent_dim=4, batch_size=8)


@pytest.fixture(autouse=True)
def no_leftover_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen]]:
    """Kill every run a test started, whatever happened to it; yields a list for children a
    test takes out of ``jobs._CHILDREN`` (to play a process that did not start them)."""
    children: dict[str, subprocess.Popen] = {}
    monkeypatch.setattr(jobs, "_CHILDREN", children)
    taken: list[subprocess.Popen] = []
    yield taken
    for child in [*children.values(), *taken]:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


def _epochs(out: Path) -> list[int]:
    return [r["epoch"] for r in ck.read_metrics(out) if r["event"] == "epoch"]


def _until(out: Path, ready, timeout: float = 120) -> jobs.TrainingStatus:
    """Poll status until ``ready(status)`` holds; fail with the status after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    current = jobs.status(out)
    while not ready(current):
        assert time.monotonic() < deadline, f"gave up waiting: {current}"
        time.sleep(0.05)
        current = jobs.status(out)
    return current


def test_command_line_carries_the_options(tmp_path: Path) -> None:
    options = jobs.JobOptions(epochs=3, lr=0.002, channels=(8, 16), conditional=True, size="tiny")
    argv = jobs.command(tmp_path / "data", tmp_path / "ck", options, resume=True)
    assert argv[1:5] == ["-m", "vae", "train", str(tmp_path / "data")]
    joined = " ".join(argv)
    for part in ("--out " + str(tmp_path / "ck"), "--epochs 3", "--lr 0.002", "--size tiny",
                 "--channels 8,16", "--conditional", "--resume"):  # fmt: skip
        assert part in joined
    assert "--beta" not in joined  # not given: the CLI default (or the stored value) holds


def test_bad_options_are_refused_before_starting(demo_dataset_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lr=0.0 must be positive"):
        jobs.start(demo_dataset_dir, tmp_path / "ck", jobs.JobOptions(lr=0.0))
    with pytest.raises(ValueError, match="channels"):
        jobs.start(demo_dataset_dir, tmp_path / "ck", jobs.JobOptions(channels=(8, 0)))
    assert not (tmp_path / "ck").exists() and not jobs._CHILDREN


def _proc_nice_and_argv(pid: int) -> tuple[int, list[str]]:
    """The process's niceness (field 19 of /proc/PID/stat) and its argv, as the kernel has them."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return int(stat[16]), argv


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("threads", [None, 0, 3])
def test_the_run_is_nicer_than_the_app_and_spares_it_a_core(
    demo_dataset_dir: Path, tmp_path: Path, threads: int | None
) -> None:
    """The child runs NICENESS steps nicer than its parent; a job that sets no thread count
    (None, or the page's 0) trains on all this process's cores but one, a set count is kept."""
    import os

    run = jobs.start(demo_dataset_dir, tmp_path / "ck", replace(LONG, threads=threads))
    nice, argv = _proc_nice_and_argv(run.pid)
    assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + jobs.NICENESS)
    cores = len(os.sched_getaffinity(0))
    assert argv[argv.index("--threads") + 1] == str(threads or max(1, cores - 1))
    assert jobs.default_threads() == max(1, cores - 1)
    # The page's form, re-attaching, still shows what was asked for.
    assert jobs.settings(tmp_path / "ck").threads == threads


@pytest.mark.slow
def test_start_follow_stop_resume(
    demo_dataset_dir: Path, tmp_path: Path, no_leftover_runs: list[subprocess.Popen]
) -> None:
    out = tmp_path / "ck"
    first = jobs.start(demo_dataset_dir, out, LONG)
    assert first.running and first.pid and first.epochs == 100_000 and first.epoch == 0
    job = json.loads((out / jobs.JOB_FILE).read_text())
    assert job["pid"] == first.pid and job["data"] == str(demo_dataset_dir.absolute())
    assert job["command"][job["command"].index("--channels") + 1] == "8,16"

    # Another process (a reloaded app) sees the run from disk alone, not as its parent.
    no_leftover_runs.append(jobs._CHILDREN.pop(str(out.absolute())))
    running = _until(out, lambda s: s.epoch >= 2)
    assert running.running and running.pid == first.pid == lock_owner(out)
    assert running.seconds_per_epoch > 0 and running.eta > 0 and 0 < running.fraction < 1
    assert [r["epoch"] for r in running.records if r["event"] == "epoch"][:2] == [1, 2]
    assert jobs.running_under(tmp_path) == [out]

    with pytest.raises(ValueError, match=f"training process {first.pid} is already writing"):
        jobs.start(demo_dataset_dir, out, LONG)
    assert jobs.stop(out) == first.pid
    stopped = _until(out, lambda s: not s.running, timeout=60)
    assert no_leftover_runs[0].wait(timeout=10) == 0  # a clean stop, not a kill
    assert stopped.state == "stopped" and stopped.error is None
    kept = ck.read_config(out)["epoch"]
    assert kept == stopped.epoch == _epochs(out)[-1] >= 2
    assert lock_owner(out) is None and jobs.stop(out) is None and jobs.running_under(tmp_path) == []

    with pytest.raises(ValueError, match="already holds a checkpoint .* resume it"):
        jobs.start(demo_dataset_dir, out, TINY)
    resumed = jobs.start(demo_dataset_dir, out, jobs.JobOptions(epochs=kept + 2), resume=True)
    assert resumed.running and resumed.epochs == kept + 2
    done = jobs.wait(out, timeout=120)
    assert done.state == "done" and done.returncode == 0 and done.error is None
    assert _epochs(out) == list(range(1, kept + 3))  # continued from the kept epoch
    assert ck.read_config(out)["epoch"] == kept + 2 == done.epoch
    assert json.loads((out / jobs.JOB_FILE).read_text())["returncode"] == 0


@pytest.mark.slow
def test_failed_run_reports_its_error_line(demo_dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck"
    jobs.start(tmp_path / "no-such-dataset", out, TINY)
    failed = jobs.wait(out, timeout=120)
    assert failed.state == "failed" and failed.returncode == 1 and failed.epoch == 0
    assert failed.error.startswith(f"{tmp_path / 'no-such-dataset'}: no dataset folder here")
    assert str(out / jobs.LOG_FILE) in failed.error
    # The folder is not spoilt: a good run starts there (job.json and train.log are ours).
    jobs.start(demo_dataset_dir, out, jobs.JobOptions(epochs=1, batch_size=8, latent_dim=4))
    assert jobs.wait(out, timeout=120).state == "done" and _epochs(out) == [1]


@pytest.mark.slow
def test_killed_run_is_failed_and_resumable(demo_dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck"
    pid = jobs.start(demo_dataset_dir, out, LONG).pid
    _until(out, lambda s: s.epoch >= 1 and ck.has_checkpoint(out))  # epoch 1 saved
    jobs._CHILDREN[str(out.absolute())].send_signal(signal.SIGKILL)
    failed = _until(out, lambda s: not s.running, timeout=30)
    assert failed.state == "failed" and failed.returncode == -signal.SIGKILL
    assert "signal 9" in failed.error and "resume it" in failed.error
    assert jobs.start(demo_dataset_dir, out, jobs.JobOptions(epochs=1), resume=True).pid != pid
    assert jobs.wait(out, timeout=120).state == "done"


def test_status_of_a_folder_without_job(studio_root: Path, tmp_path: Path) -> None:
    idle = jobs.status(studio_root / "checkpoints" / "demo")  # trained in-process, no job.json
    assert idle.state == "idle" and idle.epoch == idle.epochs == 2 and not idle.running
    assert idle.data == studio_root / "data" / "demo"
    assert jobs.checkpoint_dataset(studio_root / "checkpoints" / "demo") == idle.data
    assert jobs.status(tmp_path / "nothing").state == "idle"
    assert jobs.running_under(tmp_path / "nowhere") == []


def test_status_of_a_run_another_process_started(tmp_path: Path) -> None:
    """Only the files speak: exit code unknown, the log's last line says it finished."""
    out = tmp_path / "ck"
    out.mkdir()
    for epoch in range(1, 11):  # tiny epochs (0.05 s) that took 2 s each with saving
        stamp = f"2026-01-01T00:00:{2 * epoch:02d}+00:00"
        line = {"event": "epoch", "epoch": epoch, "val_loss": 1.0, "seconds": 0.05, "time": stamp}
        ck.append_jsonl(out / ck.METRICS_FILE, line)
    job = {"format_version": jobs.JOB_VERSION, "pid": 999_999_999, "epochs": 20}
    (out / jobs.JOB_FILE).write_text(json.dumps({**job, "returncode": None, "started": 0}))
    (out / jobs.LOG_FILE).write_text("epoch 10/20: 100%|###| 3/3\rcheckpoint at epoch 10 -> ck\n")
    stopped = jobs.status(out)
    assert stopped.state == "stopped" and stopped.epoch == 10 and stopped.epochs == 20
    assert stopped.seconds_per_epoch == 2.0 and stopped.fraction == 0.5
    (out / jobs.LOG_FILE).write_text("epoch 1/20: 0%|   | 0/3\rerror: out of memory\n")
    failed = jobs.status(out)
    assert failed.state == "failed" and failed.error.startswith("out of memory; the checkpoint")


def test_the_eta_counts_down_between_progress_lines_and_covers_the_last_save():
    """With a known pace (10 s an epoch, saving included), the ETA falls with the clock, not
    in jumps at each logged step, and the last epoch's saving is not "under a second"."""
    from vae.jobs.files import eta as _eta

    def left(now: float, batch: int | None = None) -> float | None:
        # 3 of 5 epochs done; epoch 4 began at t = 100
        return _eta(3, 5, batch, 20, 10.0, started=0.0, epoch_began=100.0, now=now)

    assert left(100.0) == 20.0
    assert [left(t) for t in (103.0, 106.0, 109.0)] == [17.0, 14.0, 11.0]
    assert left(106.0, batch=7) == left(106.0, batch=19)  # a step line does not move it
    assert left(119.5) == 0.5  # the last epoch's batches are done, its save is not
    assert left(140.0) == 0.0  # never below 0: "any moment now"
    # epoch 1, no pace yet: the share of batches done so far sets it
    first = _eta(0, 5, 5, 20, None, started=0.0, now=10.0)
    assert first == pytest.approx((5 - 0.25) * 40.0)
    assert _eta(0, 5, None, None, None, started=0.0, now=10.0) is None


# ------------------------------------------------------------------------------ stage 2

STAGE = jobs.SharpenOptions(batch_size=8, threads=1, shift_frames=2)


def test_the_sharpen_command_line_is_one_the_cli_takes(tmp_path: Path) -> None:
    from vae.cli import build_parser
    from vae.cli.train import cmd_sharpen

    options = replace(STAGE, epochs=3, lr=2e-4, judge="judges/j")
    argv = jobs.command(tmp_path / "data", tmp_path / "ck", options, resume=True)
    assert argv[1:7] == ["-m", "vae", "sharpen", str(tmp_path / "ck"), "--data",
                         str(tmp_path / "data")]  # fmt: skip
    args = build_parser().parse_args(argv[3:])
    assert args.func is cmd_sharpen and args.resume and args.ckpt == str(tmp_path / "ck")
    assert (args.epochs, args.lr, args.batch_size, args.shift_frames) == (3, 2e-4, 8, 2)
    assert args.judge == str(Path("judges/j").absolute())  # the child runs from elsewhere
    assert args.critic_lr is None  # not given: the CLI default (or the stored value) holds
    with pytest.raises(ValueError, match="epochs=0 must be at least 1"):
        jobs.start(tmp_path / "data", tmp_path / "ck", replace(STAGE, epochs=0))
    with pytest.raises(ValueError, match="holds no checkpoint to sharpen; train one there"):
        jobs.start(tmp_path / "data", tmp_path / "ck", STAGE)
    assert not jobs._CHILDREN


@pytest.fixture
def trained(demo_dataset_dir: Path, tmp_path: Path) -> Path:
    """A tiny conditional VAE trained one epoch on the demo set (in this process)."""
    from vae.training.train import train
    from vae.training.train_config import TrainConfig

    out = tmp_path / "ck"
    cfg = TrainConfig(epochs=1, batch_size=8, threads=1, device="cpu")
    overrides = {"channels": (8, 16), "latent_dim": 4, "conditional": True}
    train(demo_dataset_dir, out, train_config=cfg, model_overrides=overrides)
    return out


def _stage_lines(out: Path) -> list[dict]:
    return [r for r in ck.read_metrics(out) if r["event"] == "sharpen"]


@pytest.mark.slow
def test_sharpen_as_a_job_follow_stop_resume(
    demo_dataset_dir: Path, trained: Path, no_leftover_runs: list[subprocess.Popen]
) -> None:
    out = trained
    first = jobs.start(demo_dataset_dir, out, replace(STAGE, epochs=100_000))
    assert first.running and first.stage == "sharpen" and first.epochs == 100_000
    job = json.loads((out / jobs.JOB_FILE).read_text())
    assert job["kind"] == "sharpen" and job["command"][3:6] == ["sharpen", str(out), "--data"]
    assert job["command"][job["command"].index("--batch-size") + 1] == "8"

    # Another process (a reloaded app) sees the stage from disk alone, not as its parent.
    no_leftover_runs.append(jobs._CHILDREN.pop(str(out.absolute())))
    running = _until(out, lambda s: s.epoch >= 2)
    assert running.running and running.pid == first.pid and running.stage == "sharpen"
    assert running.sharpened == running.epoch and 0 < running.fraction < 1
    assert jobs.running_under(out.parent) == [out]
    with pytest.raises(ValueError, match=f"training process {first.pid} is already writing"):
        jobs.start(demo_dataset_dir, out, STAGE, resume=True)

    assert jobs.stop(out) == first.pid
    stopped = _until(out, lambda s: not s.running, timeout=60)
    assert no_leftover_runs[0].wait(timeout=10) == 0  # a clean stop, not a kill
    assert stopped.state == "stopped" and stopped.error is None and stopped.stage == "sharpen"
    kept = json.loads((out / "sharpen.json").read_text())["stage_epoch"]
    assert kept == stopped.epoch == stopped.sharpened == _stage_lines(out)[-1]["stage_epoch"] >= 2
    assert [r["epoch"] for r in _stage_lines(out)] == list(range(2, kept + 2))  # after stage 1's

    # The stage's settings come back for the page; stage 1's stay stage 1's.
    assert jobs.sharpen_settings(out) == replace(STAGE, epochs=100_000).resolved()
    assert jobs.settings(out).epochs == 1 and jobs.settings(out).latent_dim == 4
    with pytest.raises(ValueError, match=f"already sharpened for {kept} stage epochs; resume"):
        jobs.start(demo_dataset_dir, out, STAGE)
    with pytest.raises(ValueError, match="has been sharpened .* stage 1 cannot resume"):
        jobs.start(demo_dataset_dir, out, jobs.JobOptions(epochs=5), resume=True)

    resumed = jobs.start(demo_dataset_dir, out, jobs.SharpenOptions(epochs=kept + 1), resume=True)
    assert resumed.running and resumed.epochs == kept + 1
    assert json.loads((out / jobs.JOB_FILE).read_text())["command"][-1] == "--resume"
    done = jobs.wait(out, timeout=120)
    assert done.state == "done" and done.returncode == 0 and done.error is None
    assert done.epoch == done.sharpened == kept + 1
    assert [r["stage_epoch"] for r in _stage_lines(out)] == list(range(1, kept + 2))
    assert ck.read_config(out)["epoch"] == 1 + kept + 1  # counting on from stage 1
    assert jobs.sharpen_settings(out).batch_size == 8  # the resumed job left it to sharpen.json


def test_the_stage_bar_in_the_log_gives_the_batch(tmp_path: Path) -> None:
    """Stage 2 writes no step lines: the batch of the stage epoch in progress is its
    progress bar's last redraw in train.log (tqdm's format), and only that epoch's."""
    from vae.jobs.files import stage_batch

    log = tmp_path / "train.log"
    log.write_text(
        "sharpen 1/3:  30%|###       | 3/10 [00:01<00:02,  3.20batch/s]\r"
        "sharpen 1/3: 100%|##########| 10/10 [00:03<00:00,  3.20batch/s]\r       \r"
        "sharpen 1/3 (epoch 3): critic 1.000, adversarial 0.500, features 0.100, spectral "
        "0.0040 val 0.0041 in 3.1 s\n"
        "sharpen 2/3:  10%|\u2588         | 1/10 [00:00<00:02,  3.20batch/s]\r"
        "sharpen 2/3:  40%|\u2588\u2588\u2588\u2588      | 4/10 [00:01<00:02,  3.20batch/s]",
        encoding="utf-8",
    )
    assert stage_batch(log, 2) == (4, 10)
    assert stage_batch(log, 3) == (None, None)  # its bar has not shown yet
    assert stage_batch(tmp_path / "none.log", 1) == (None, None)


def test_status_of_a_sharpened_folder_without_job(tmp_path: Path) -> None:
    """Sharpened from the CLI: the folder's status is stage 2's, up to what sharpen.json
    keeps (a line written before a kill mid-save is not counted)."""
    out = tmp_path / "ck"
    out.mkdir()
    for epoch in (1, 2):
        ck.append_jsonl(out / ck.METRICS_FILE, {"event": "epoch", "epoch": epoch})
    for k in (1, 2, 3):
        line = {"event": "sharpen", "epoch": 2 + k, "stage_epoch": k, "stage_epochs": 4}
        ck.append_jsonl(out / ck.METRICS_FILE, line)
    record = {"format_version": 1, "base_epoch": 2, "stage_epoch": 2, "config": {"epochs": 4}}
    (out / "sharpen.json").write_text(json.dumps(record))
    idle = jobs.status(out)
    assert (idle.state, idle.stage, idle.epoch, idle.epochs, idle.sharpened) == (
        "idle", "sharpen", 2, 4, 2)  # fmt: skip
    assert idle.fraction == 0.5
    assert jobs.sharpen_settings(out) == jobs.SharpenOptions(epochs=4)
    assert jobs.status(tmp_path / "nothing").stage == "train"
