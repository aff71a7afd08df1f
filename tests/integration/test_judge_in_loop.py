"""The judge in the training loop (vae.training.judge_in_loop): judge lines every N epochs with
real figures,
best/ holding the epoch they call best (and loading on its own), an earlier best kept when the
score gets worse, the stale note and --stop-when-stale, resume, the CLI's flags and errors,
and the Train page's switch, chart and verdict."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest

from tests.apptest import open_page
from tests.clirun import vae
from vae import cli
from vae.cli.train import judge_line
from vae.data.dataset import load_dataset
from vae.evaluation.judge import Judge
from vae.evaluation.judge_training import JudgeTraining, train_judge
from vae.jobs import runner as jobs
from vae.model import checkpoints as ck
from vae.synthesis.inference import Synthesiser
from vae.training.judge_in_loop import BEST_DIR, SAMPLES_PER_LABEL, Judging, copy_best
from vae.training.train import train
from vae.training.train_config import TrainConfig
from vae.workspace import list_checkpoints

TINY = {"channels": (8, 16), "latent_dim": 4, "conditional": True}
FIGURES = ("samples_accuracy", "reconstructed_accuracy", "samples_frechet", "reconstructed_frechet")


@pytest.fixture(scope="session")
def judge_dir(tmp_path_factory: pytest.TempPathFactory, demo_dataset_dir: Path) -> Path:
    """A judge of the demo set's 5 labels (15 quick epochs: about 80 % on its val clips)."""
    out = tmp_path_factory.mktemp("judges") / "demo"
    train_judge(load_dataset(demo_dataset_dir), out, JudgeTraining(epochs=15, batch_size=8))
    return out


def _cfg(epochs: int, judge: Path | None, every: int = 1, **kw) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=8, device="cpu", threads=1, log_every=0,
        judge_every=every if judge else 0, judge=str(judge) if judge else None, **kw,
    )  # fmt: skip


def _lines(out: Path, event: str = "judge") -> list[dict]:
    return [r for r in ck.read_metrics(out) if r.get("event") == event]


def _scripted(monkeypatch: pytest.MonkeyPatch, scores: dict[int, float]) -> dict[int, bytes]:
    """Judging.score gives the samples' Fréchet distance ``scores[epoch]`` of the checkpoint
    it is asked about; returns model.pt's bytes as each scored epoch left it."""
    seen: dict[int, bytes] = {}

    def score(self: Judging, folder: Path) -> dict:
        epoch = ck.read_config(folder)["epoch"]
        seen[epoch] = (Path(folder) / ck.WEIGHTS_FILE).read_bytes()
        value = scores[epoch]
        figures = dict.fromkeys(FIGURES, value)
        return {**figures, "samples_accuracy": 0.5, "reconstructed_accuracy": 0.5}

    monkeypatch.setattr(Judging, "score", score)
    return seen


def test_due_every_n_epochs_and_the_last() -> None:
    cfg = TrainConfig(epochs=7, judge_every=3, judge="j")
    assert [e for e in range(1, 8) if cfg.judged_after(e)] == [3, 6, 7]
    assert not any(TrainConfig(epochs=7).judged_after(e) for e in range(1, 8))
    with pytest.raises(ValueError, match="judge_every=2 needs a judge folder"):
        TrainConfig(judge_every=2)
    with pytest.raises(ValueError, match="judge_every=-1"):
        TrainConfig(judge_every=-1, judge="j")
    with pytest.raises(ValueError, match="judge_patience=0"):
        TrainConfig(judge_patience=0)


@pytest.mark.slow
def test_judge_lines_and_a_best_folder_that_holds_the_best_epoch(
    demo_dataset_dir: Path, judge_dir: Path, tmp_path: Path
) -> None:
    events: list[dict] = []
    out = tmp_path / "ck"
    result = train(demo_dataset_dir, out, train_config=_cfg(5, judge_dir, every=2),
                   model_overrides=TINY, progress=events.append)  # fmt: skip
    assert result.epoch == 5 and not result.stopped
    lines = _lines(out)
    assert [r["epoch"] for r in lines] == [2, 4, 5]  # every 2 epochs and the last
    assert [e for e in events if e["event"] == "judge"] == lines  # the CLI and app see them
    ds = load_dataset(demo_dataset_dir)
    for line in lines:
        assert all(math.isfinite(line[k]) for k in FIGURES)
        assert 0 <= line["samples_accuracy"] <= 1 and 0 <= line["reconstructed_accuracy"] <= 1
        assert line["samples_frechet"] >= 0 and line["reconstructed_frechet"] >= 0
        assert line["score"] == line["samples_frechet"]
        assert line["samples"] == SAMPLES_PER_LABEL * len(ds.label_names)
        assert line["reconstructions"] == len(ds.split_indices("val"))
        assert line["real_accuracy"] >= 0.6  # the judge hears real clips well...
        assert line["real_frechet"] < line["samples_frechet"]  # ...and they are nearer
    # The best epoch is the lowest score so far, and the stale counts follow it.
    scores = [r["score"] for r in lines]
    best = lines[scores.index(min(scores))]["epoch"]
    assert lines[-1]["best_epoch"] == best and lines[-1]["best_score"] == min(scores)
    assert [r["improved"] for r in lines][0] is True
    for i, line in enumerate(lines):
        assert line["stale"] == i - max(j for j in range(i + 1) if lines[j]["improved"])
    # best/ is a checkpoint of its own, of that epoch: scored again, it gives the same figures.
    assert ck.read_config(out)["epoch"] == 5  # the folder stays the last epoch
    synth = Synthesiser.load(out / BEST_DIR)
    assert synth.checkpoint.epoch == best
    assert sorted(p.name for p in (out / BEST_DIR).iterdir()) == [
        "config.json", "latents.npz", "model.pt", "prior.npz"]  # fmt: skip
    again = Judging(Judge.load(judge_dir), ds, out).score(out / BEST_DIR)
    line = next(r for r in lines if r["epoch"] == best)
    for key in FIGURES:
        assert again[key] == pytest.approx(line[key], rel=1e-4, abs=1e-6)


@pytest.mark.slow
def test_a_worse_score_keeps_the_earlier_best_and_says_when_to_stop(
    demo_dataset_dir: Path, judge_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _scripted(monkeypatch, {1: 3.0, 2: 1.0, 3: 2.0, 4: 1.5, 5: 4.0})
    events: list[dict] = []
    out = tmp_path / "ck"
    result = train(demo_dataset_dir, out, train_config=_cfg(5, judge_dir), model_overrides=TINY,
                   progress=events.append)  # fmt: skip
    assert result.epoch == 5 and not result.stopped  # saying so does not stop the run
    lines = _lines(out)
    assert [r["best_epoch"] for r in lines] == [1, 2, 2, 2, 2]
    assert [r["stale"] for r in lines] == [0, 0, 1, 2, 3]
    assert [r["improved"] for r in lines] == [True, True, False, False, False]
    notes = [e["message"] for e in events if e["event"] == "note"]
    assert notes == [
        "the judge's score has not improved for 3 evaluations since epoch 2: stopping now "
        f"loses nothing; {out / BEST_DIR} holds epoch 2"
    ]
    # best/ is still epoch 2, byte for byte, while the folder went on to epoch 5.
    assert ck.read_config(out / BEST_DIR)["epoch"] == 2 and ck.read_config(out)["epoch"] == 5
    assert (out / BEST_DIR / ck.WEIGHTS_FILE).read_bytes() == seen[2] != seen[5]


@pytest.mark.slow
def test_stop_when_stale_stops_at_the_patience(
    demo_dataset_dir: Path, judge_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _scripted(monkeypatch, {1: 3.0, 2: 1.0, 3: 2.0, 4: 1.5, 5: 4.0})
    out = tmp_path / "ck"
    cfg = _cfg(20, judge_dir, judge_patience=2, stop_when_stale=True)
    result = train(demo_dataset_dir, out, train_config=cfg, model_overrides=TINY)
    assert result.stopped and result.epoch == 4  # epochs 3 and 4 did not beat epoch 2
    assert ck.read_config(out)["epoch"] == 4 and ck.read_config(out / BEST_DIR)["epoch"] == 2
    assert (out / BEST_DIR / ck.WEIGHTS_FILE).read_bytes() == seen[2]
    assert _lines(out)[-1]["stale"] == 2


@pytest.mark.slow
def test_stop_after_a_judged_epoch_keeps_it_and_its_best(
    demo_dataset_dir: Path, judge_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _scripted(monkeypatch, {1: 2.0, 2: 1.0, 3: 3.0})
    out = tmp_path / "ck"
    asked: list[int] = []  # Stop (SIGTERM) pressed while epoch 2 was being judged

    def progress(event: dict) -> None:
        if event["event"] == "judge" and event["epoch"] == 2:
            asked.append(1)

    result = train(demo_dataset_dir, out, train_config=_cfg(10, judge_dir), model_overrides=TINY,
                   progress=progress, should_stop=lambda: bool(asked))  # fmt: skip
    assert result.stopped and result.epoch == 2
    assert ck.read_config(out)["epoch"] == 2 and ck.read_config(out / BEST_DIR)["epoch"] == 2
    assert (out / BEST_DIR / ck.WEIGHTS_FILE).read_bytes() == seen[2]
    assert [r["epoch"] for r in _lines(out)] == [1, 2]
    asked.clear()
    train(demo_dataset_dir, out, train_config=_cfg(3, judge_dir), model_overrides=TINY,
          resume=True)  # fmt: skip
    assert [r["best_epoch"] for r in _lines(out)] == [1, 2, 2]


@pytest.mark.slow
def test_resume_trims_picks_up_the_best_and_repairs_best(
    demo_dataset_dir: Path, judge_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _scripted(monkeypatch, {1: 2.0, 2: 1.0, 3: 0.5, 4: 3.0, 5: 0.7})
    out = tmp_path / "ck"
    train(demo_dataset_dir, out, train_config=_cfg(3, judge_dir), model_overrides=TINY)
    # As a run killed after writing epoch 3's judge line, before copying it into best/,
    # and then killed in epoch 4 after its lines: best/ lags and a line runs ahead.
    shutil.rmtree(out / BEST_DIR)
    ck.append_jsonl(out / ck.METRICS_FILE, {"event": "judge", "epoch": 4, "score": 0.1})
    events: list[dict] = []
    train(demo_dataset_dir, out, train_config=_cfg(5, judge_dir), model_overrides=TINY,
          resume=True, progress=events.append)  # fmt: skip
    lines = _lines(out)
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4, 5]  # the stray epoch-4 line is gone
    assert [r["best_epoch"] for r in lines] == [1, 2, 3, 3, 3]
    assert [r["stale"] for r in lines] == [0, 0, 0, 1, 2]  # counted on across the resume
    assert ck.read_config(out / BEST_DIR)["epoch"] == 3  # repaired from the folder
    assert (out / BEST_DIR / ck.WEIGHTS_FILE).read_bytes() == seen[3]
    assert [r["epoch"] for r in _lines(out, "epoch")] == [1, 2, 3, 4, 5]


def test_a_fresh_start_drops_the_best_of_a_run_that_is_gone(tmp_path: Path) -> None:
    out = tmp_path / "ck"
    (out / BEST_DIR).mkdir(parents=True)
    (out / BEST_DIR / "model.pt").write_bytes(b"old")
    (out / ck.METRICS_FILE).write_text("")
    from vae.training.train import _prepare_out

    assert _prepare_out(out, resume=False, emit=lambda e: None) is False
    assert not (out / BEST_DIR).exists()


def test_copy_best_replaces_the_folder_whole(demo_dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck"
    train(demo_dataset_dir, out, train_config=_cfg(1, None), model_overrides=TINY)
    (out / BEST_DIR).mkdir()
    (out / BEST_DIR / "stale.txt").write_text("from before")
    copy_best(out)
    assert sorted(p.name for p in (out / BEST_DIR).iterdir()) == [
        "config.json", "latents.npz", "model.pt", "prior.npz"]  # fmt: skip
    assert [p.name for p in out.iterdir() if p.name.startswith(".best")] == []
    found = {item.path: item.summary for item in list_checkpoints(tmp_path)}
    assert found[out / BEST_DIR].startswith("the judge's best epoch of ck: epoch 1")
    assert out in found


@pytest.mark.slow
def test_unlabelled_data_gets_the_distances_alone(
    demo_set_dir: Path, tiny_feature_config, judge_dir: Path, tmp_path: Path
) -> None:
    from vae.data.dataset import preprocess

    data = tmp_path / "unlabelled"
    preprocess(demo_set_dir, data, tiny_feature_config, labels="none", val_fraction=0.2)
    out = tmp_path / "ck"
    overrides = {"channels": (8, 16), "latent_dim": 4}
    train(data, out, train_config=_cfg(2, judge_dir, every=2), model_overrides=overrides)
    (line,) = _lines(out)
    assert line["samples_accuracy"] is None and line["reconstructed_accuracy"] is None
    assert line["real_accuracy"] is None
    assert math.isfinite(line["samples_frechet"]) and math.isfinite(line["reconstructed_frechet"])
    assert line["samples"] == SAMPLES_PER_LABEL * 5  # as many as a conditional model's
    assert judge_line(line).startswith("judge epoch 2: heard right - of samples, - of ")
    assert Synthesiser.load(out / BEST_DIR).checkpoint.epoch == 2


# ------------------------------------------------------------------------------ judges that
# cannot hear the dataset, and the CLI


def _judge_copy(judge_dir: Path, tmp_path: Path, **changes) -> Path:
    """A copy of the judge with judge.json's judge_config (or top level) changed."""
    out = tmp_path / "judge-copy"
    shutil.copytree(judge_dir, out)
    info = json.loads((out / "judge.json").read_text())
    for key, value in changes.items():
        (info["judge_config"] if key in info["judge_config"] else info)[key] = value
    (out / "judge.json").write_text(json.dumps(info))
    return out


def _cli_error(capsys: pytest.CaptureFixture, *argv: object) -> str:
    assert cli.main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ")
    return err[-1]


def test_cli_refuses_judges_that_do_not_fit_in_one_line(
    demo_dataset_dir: Path, quick_judge_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["train", demo_dataset_dir, "--out", tmp_path / "ck", "--epochs", "1", "--device",
            "cpu", "--threads", "1"]  # fmt: skip
    line = _cli_error(capsys, *base, "--judge-every", "2")
    assert "judge_every=2 needs a judge folder: pass --judge DIR" in line
    line = _cli_error(capsys, *base, "--judge", quick_judge_dir)
    assert line == "error: --judge DIR scores the model only with --judge-every N (epochs)"
    line = _cli_error(capsys, *base, "--judge-every", "1", "--judge", tmp_path / "nope")
    assert f"--judge {tmp_path / 'nope'}: no such folder" in line
    fast = _judge_copy(quick_judge_dir, tmp_path, sample_rate=16000)
    line = _cli_error(capsys, *base, "--judge-every", "1", "--judge", fast)
    assert "audio at 8000 Hz, but the judge hears 16000 Hz" in line
    shutil.rmtree(fast)
    other = _judge_copy(quick_judge_dir, tmp_path, label_names=list("abcde"))
    line = _cli_error(capsys, *base, "--judge-every", "1", "--judge", other)
    assert "are not the judge's ['a', 'b', 'c', 'd', 'e']" in line
    assert not ck.has_checkpoint(tmp_path / "ck")  # refused before any epoch


@pytest.mark.slow
def test_cli_prints_the_judge_line_and_keeps_best(
    demo_dataset_dir: Path, judge_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ck"
    proc = vae("train", demo_dataset_dir, "--out", out, "--epochs", "2", "--judge-every", "2",
               "--judge", judge_dir, "--channels", "8,16", "--latent-dim", "4", "--batch-size",
               "8", "--conditional", "--device", "cpu", "--threads", "1")  # fmt: skip
    (line,) = _lines(out)
    printed = [x for x in proc.stdout.replace("\r", "\n").splitlines() if x.startswith("judge")]
    assert printed == [
        f"judge epoch 2: heard right {line['samples_accuracy']:.0%} of samples, "
        f"{line['reconstructed_accuracy']:.0%} of reconstructions; Fréchet distance samples "
        f"{line['samples_frechet']:.2f}, reconstructions {line['reconstructed_frechet']:.2f}; "
        "best epoch 2 (new)"
    ]
    assert ck.read_config(out)["train_config"]["judge"] == str(judge_dir.absolute())
    assert Synthesiser.load(out / BEST_DIR).checkpoint.epoch == 2


def test_job_options_pass_the_judge(quick_judge_dir: Path) -> None:
    options = jobs.JobOptions(epochs=2, judge_every=3, judge=str(quick_judge_dir))
    argv = jobs.command("data", "out", options, resume=False)
    assert argv[argv.index("--judge-every") + 1] == "3"
    assert argv[argv.index("--judge") + 1] == str(quick_judge_dir.absolute())
    off = jobs.command("d", "o", jobs.JobOptions(judge_every=0, judge="x"), resume=True)
    assert "--judge" not in off and off[off.index("--judge-every") + 1] == "0"
    with pytest.raises(ValueError, match="needs a judge folder"):
        jobs.JobOptions(judge_every=1).check()


# ------------------------------------------------------------------------------ Train page


def _tiny_on_page(at, name: str, epochs: int) -> None:
    at.text_input(key="train-folder").set_value(name)
    at.text_input(key="train-channels").set_value("8,16")
    at.number_input(key="train-latent-dim").set_value(4)
    at.number_input(key="train-batch-size").set_value(8)
    at.number_input(key="train-epochs").set_value(epochs)


@pytest.mark.slow
def test_train_page_judges_every_epoch_and_names_the_best(
    studio_copy: Path, judge_dir: Path
) -> None:
    shutil.copytree(judge_dir, studio_copy / "judges" / "demo")
    at = open_page("train")
    assert not at.exception
    assert at.number_input(key="train-judge-every").value == 0  # off by default
    picker = at.selectbox(key="train-judge")
    assert picker.value == "judges/demo" and len(picker.options) == 1
    _tiny_on_page(at, "judged", epochs=2)
    at.checkbox(key="train-conditional").check()  # so that samples have a label to hear
    at.number_input(key="train-judge-every").set_value(1)
    at.button(key="train-start").click()
    at.run()
    assert not at.error and not at.exception
    deadline = time.monotonic() + 180
    while not at.success:
        assert time.monotonic() < deadline, [e.value for e in at.error]
        time.sleep(0.5)
        at.run()
    folder = Path("checkpoints/judged")
    lines = _lines(folder)
    assert [r["epoch"] for r in lines] == [1, 2]
    traces = {  # (name, panel): x "x" the accuracies, "x2" the Fréchet distances
        (t["name"], t.get("xaxis", "x")): t
        for t in json.loads(_chart(at, "train-judge-scores"))["data"]
    }
    for name, key in (("samples", "samples"), ("reconstructions", "reconstructed")):
        for axis, figure in (("x", "accuracy"), ("x2", "frechet")):
            assert traces[name, axis]["x"] == [1, 2]
            assert traces[name, axis]["y"] == pytest.approx([r[f"{key}_{figure}"] for r in lines])
    best = lines[-1]["best_epoch"]
    star = traces[f"best (epoch {best})", "x2"]
    assert star["x"] == [best] and star["y"] == [lines[best - 1]["samples_frechet"]]
    captions = [c.value for c in at.caption]
    assert any(c.startswith(f"Best epoch by the judge: {best} ") for c in captions), captions
    assert Synthesiser.load(folder / BEST_DIR).checkpoint.epoch == best
    assert folder / BEST_DIR in [item.path for item in list_checkpoints()]
    # Resume with the switch at 0 (as after leaving the page) keeps the run's own setting.
    at.number_input(key="train-judge-every").set_value(0)
    at.number_input(key="train-epochs").set_value(3)
    at.button(key="train-resume").click()
    at.run()
    assert "--judge-every" not in jobs.read_job(folder)["command"]
    deadline = time.monotonic() + 180
    while not (at.success and "3 epochs" in at.success[0].value):
        assert time.monotonic() < deadline, [e.value for e in at.error]
        time.sleep(0.5)
        at.run()
    assert [r["epoch"] for r in _lines(folder)] == [1, 2, 3]


def _chart(at, key: str) -> str:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key)]
    assert charts, f"no chart {key}"
    return charts[0].proto.spec


@pytest.mark.slow
def test_train_page_says_stop_now_and_needs_a_judge(studio_copy: Path) -> None:
    folder = Path("checkpoints/demo")
    for epoch, score, stale in ((1, 1.0, 0), (2, 2.0, 1)):
        ck.append_jsonl(folder / ck.METRICS_FILE, {
            "event": "judge", "epoch": epoch, "samples_accuracy": 0.9,
            "reconstructed_accuracy": 0.8, "samples_frechet": score,
            "reconstructed_frechet": 0.5, "score": score, "best_epoch": 1, "best_score": 1.0,
            "improved": stale == 0, "stale": stale, "patience": 1,
        })  # fmt: skip
    at = open_page("train")
    at.text_input(key="train-folder").set_value("demo")
    at.run()
    assert not at.exception
    assert [i.value for i in at.info if i.value.startswith("Stop now")] == [
        "Stop now: best/ holds epoch 1. The judge's score has not improved for 1 "
        "evaluations since then, so stopping loses nothing."
    ]
    at.text_input(key="train-folder").set_value("fresh")
    at.run()  # in a browser each change is a run of its own: leaving demo/ restores mine
    at.number_input(key="train-judge-every").set_value(2)
    at.button(key="train-start").click()
    at.run()
    assert [e.value for e in at.error] == [
        "Judge every N epochs needs a judge: train one on the Evaluate page."
    ]
    assert not Path("checkpoints/fresh/job.json").exists()
