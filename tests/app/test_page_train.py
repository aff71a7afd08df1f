"""The Train page in AppTest (the real app.py): start a tiny run and watch its curves and
reconstructions, stop and resume it, re-attach to a run started elsewhere, and show every
error a user can cause as st.error with its fix. Runs are real ``python -m vae train``
processes on a copy of the studio workspace."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shlex
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.apptest import chart_traces, open_page
from ui.train_settings import SHARPEN_KEYS
from vae.cli import build_parser
from vae.jobs import recipes
from vae.jobs import runner as jobs
from vae.model import checkpoints as ck
from vae.training.sharpen_config import OPTIONS as SHARPEN_FIELDS

pytest.importorskip("streamlit.testing.v1")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace(studio_copy: Path) -> Path:
    """A private copy of the studio workspace as the working directory (``studio_copy``)."""
    return studio_copy


def _set_tiny(at, epochs: int, name: str | None = None) -> None:
    """Parameters that train in well under a second an epoch on the 128 x 33 demo features."""
    if name is not None:
        at.text_input(key="train-folder").set_value(name)
    at.text_input(key="train-channels").set_value("8,16")
    at.number_input(key="train-latent-dim").set_value(4)
    at.number_input(key="train-batch-size").set_value(8)
    at.number_input(key="train-epochs").set_value(epochs)


def _poll(at, ready: Callable[[], bool], timeout: float = 120) -> None:
    """Rerun the page (as its live view would) until ``ready()``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        if ready():
            return
        assert time.monotonic() < deadline, f"gave up: {[p.proto.text for p in _progress(at)]}"
        time.sleep(0.3)


def _progress(at) -> list:
    return list(at.get("progress"))


def _traces(at, key: str) -> list[dict]:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key)]
    assert charts, f"no chart {key}"
    return json.loads(charts[0].proto.spec)["data"]


def _val_epochs(at) -> list[int]:
    """Epochs of the validation curve (its first panel) in the loss chart."""
    return [trace["x"] for trace in _traces(at, "train-loss") if trace["name"] == "val"][0]


def _epochs(folder: Path) -> list[int]:
    return [r["epoch"] for r in ck.read_metrics(folder) if r["event"] == "epoch"]


@pytest.mark.slow
def test_start_shows_curves_reconstructions_and_selects_the_checkpoint(workspace: Path) -> None:
    at = open_page("train")
    assert not at.exception
    assert at.text_input(key="train-folder").value == "demo-vae"  # a fresh name
    assert any("Nothing trained" in c.value for c in at.caption)
    _set_tiny(at, epochs=3)
    at.number_input(key="train-weight-decay").set_value(0.01)  # in the Advanced expander
    at.selectbox(key="train-likelihood").set_value("laplace")
    at.button(key="train-start").click()
    at.run()
    assert not at.error and not at.exception
    _poll(at, lambda: bool(at.success))

    folder = Path("checkpoints/demo-vae")
    assert _epochs(folder) == [1, 2, 3]
    assert _val_epochs(at) == [1, 2, 3]
    val = [t for t in _traces(at, "train-loss") if t["name"] == "val"][0]
    assert len(val["y"]) == 3 and all(v > 0 for v in val["y"])
    assert _progress(at)[0].proto.text.startswith("Epoch 3/3")
    assert "Finished 3 epochs" in at.success[0].value
    assert "Reconstructions after epoch 3" in [s.value for s in at.subheader]
    assert len(at.get("audio")) == 6  # 3 validation clips: original and reconstruction
    assert len([c for c in at.get("plotly_chart") if "train-recon-" in c.proto.id]) == 3
    assert at.session_state["studio-checkpoint"] == str(folder)  # now the current checkpoint
    assert ck.read_config(folder)["model_config"]["channels"] == [8, 16]
    assert ck.read_config(folder)["model_config"]["latent_dim"] == 4
    trained = ck.read_config(folder)["train_config"]  # the Advanced widgets reach the run
    assert (trained["weight_decay"], trained["likelihood"]) == (0.01, "laplace")
    download = at.main.get("download_button")[0].proto
    assert download.label == "Download checkpoint demo-vae.zip"


@pytest.mark.slow
def test_stop_leaves_a_checkpoint_and_resume_continues(workspace: Path) -> None:
    at = open_page("train")
    _set_tiny(at, epochs=100_000, name="long")
    at.button(key="train-start").click()
    folder = Path("checkpoints/long")
    _poll(at, lambda: len(_epochs(folder)) >= 2)
    assert _progress(at) and "ETA" in _progress(at)[0].proto.text
    assert not at.button(key="train-stop").disabled and at.button(key="train-start").disabled

    at.button(key="train-stop").click()
    _poll(at, lambda: any("Stopped after epoch" in i.value for i in at.info), timeout=60)
    kept = ck.read_config(folder)["epoch"]
    assert kept >= 2 and _epochs(folder) == list(range(1, kept + 1))
    assert f"Stopped after epoch {kept}" in [i.value for i in at.info][-1]
    assert at.session_state["studio-checkpoint"] == str(folder)

    at.number_input(key="train-epochs").set_value(kept + 2)
    at.button(key="train-resume").click()
    _poll(at, lambda: bool(at.success))
    assert _epochs(folder) == list(range(1, kept + 3))  # continued from the kept epoch
    assert _val_epochs(at) == list(range(1, kept + 3))
    assert f"Finished {kept + 2} epochs" in at.success[0].value


@pytest.mark.slow
def test_a_new_session_reattaches_to_a_running_training(workspace: Path) -> None:
    options = jobs.JobOptions(epochs=100_000, channels=(8, 16), latent_dim=4, batch_size=8)
    options = dataclasses.replace(options, beta=2.5, conditional=True)
    pid = jobs.start(Path("data/demo"), Path("checkpoints/background"), options).pid
    shutil.copytree("data/demo", "data/newer")  # now the newest: not what the run trains on
    # As after an app restart: this process is not the run's parent, only its files tell.
    child = jobs._CHILDREN.pop(str(Path("checkpoints/background").absolute()))
    try:
        _follow_and_stop_from_a_new_session(pid)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


def _follow_and_stop_from_a_new_session(pid: int) -> None:
    at = open_page("train")  # a fresh session: nothing in its session_state about the run
    assert not at.exception
    assert at.text_input(key="train-folder").value == "background"
    assert any(f"Training process {pid}" in c.value for c in at.caption)
    assert not at.button(key="train-stop").disabled
    _assert_run_settings(at)
    _poll(at, lambda: bool(_val_epochs(at)))
    assert _val_epochs(at)[0] == 1

    at.button(key="train-stop").click()
    _poll(at, lambda: any("Stopped after epoch" in i.value for i in at.info), timeout=60)
    assert jobs.status(Path("checkpoints/background")).state == "stopped"
    # The ended run, opened in yet another session: still its own settings.
    _assert_run_settings(open_page("train", **{"train-last-folder": "background"}))


def _assert_run_settings(at) -> None:
    """The page shows the background run's own dataset and options, not the defaults."""
    assert not at.exception
    shown = [c.value for c in at.caption if c.value.startswith("Dataset")]
    assert shown and "data/demo` (the one `background` trains on)" in shown[0]
    assert at.number_input(key="train-epochs").value == 100_000
    assert at.number_input(key="train-latent-dim").value == 4
    assert at.number_input(key="train-batch-size").value == 8
    assert at.number_input(key="train-beta").value == 2.5
    assert at.text_input(key="train-channels").value == "8,16"
    assert at.checkbox(key="train-conditional").value is True


def _widgets(at) -> dict[str, object]:
    """The settings the page would train with, as JobOptions field -> value."""
    numbers = {"epochs": "train-epochs", "latent_dim": "train-latent-dim", "beta": "train-beta",
               "beta_warmup_epochs": "train-beta-warmup-epochs", "batch_size": "train-batch-size",
               "lr": "train-lr", "free_bits": "train-free-bits"}  # fmt: skip
    values = {name: at.number_input(key=key).value for name, key in numbers.items()}
    values["size"] = at.selectbox(key="train-size").value
    values["channels"] = at.text_input(key="train-channels").value
    values["conditional"] = at.checkbox(key="train-conditional").value
    return values


def _recipe_values(options: jobs.JobOptions) -> dict[str, object]:
    """What ``_widgets`` should read for ``options``: its values, training's defaults else."""
    full = options.resolved()
    shown = ("epochs", "latent_dim", "beta", "lr", "beta_warmup_epochs", "batch_size",
             "free_bits", "size", "conditional")  # fmt: skip
    return {**{name: getattr(full, name) for name in shown}, "channels": ""}


@pytest.mark.slow
def test_recipes_set_the_widgets_and_the_reproduce_script_uses_the_shipped_one(
    workspace: Path,
) -> None:
    at = open_page("train")
    assert at.selectbox(key="train-recipe").value == recipes.DEFAULT.name
    assert _widgets(at) == _recipe_values(recipes.DEFAULT.options)  # not beta 1, unconditional
    assert _widgets(at)["conditional"] is True and _widgets(at)["beta"] == 3.0
    for recipe in (recipes.QUICK, recipes.SHIPPED):  # the default first changes to the other
        at.selectbox(key="train-recipe").set_value(recipe.name).run()
        assert not at.exception
        assert _widgets(at) == _recipe_values(recipe.options)
        assert recipe.summary in [c.value for c in at.caption]
    assert recipes.QUICK.options.epochs < recipes.SHIPPED.options.epochs == 60

    at.number_input(key="train-epochs").set_value(7).run()  # any value can still be changed
    assert at.number_input(key="train-epochs").value == 7
    assert at.selectbox(key="train-recipe").value is None  # now the person's own settings
    at.selectbox(key="train-recipe").set_value(recipes.SHIPPED.name).run()
    page = _widgets(at)

    # The reproduce script trains with exactly the page's "as the shipped model"...
    spec = importlib.util.spec_from_file_location(
        "reproduce", ROOT / "scripts/reproduce_fsdd_digits.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = build_parser().parse_args(["train", "DATA", "--out", "X", *shlex.split(script.TRAIN)])
    assert args.conditional is page["conditional"] is True
    for name in ("epochs", "latent_dim", "beta", "beta_warmup_epochs"):
        assert getattr(args, name) == page[name], name
    # ...which are the settings the shipped checkpoint was trained with.
    shipped = jobs.settings(ROOT / "checkpoints" / "fsdd-digits")
    assert shipped is not None and shipped.resolved() == recipes.SHIPPED.options.resolved()


@pytest.mark.slow
def test_user_errors_show_the_fix(workspace: Path, tmp_path: Path) -> None:
    at = open_page("train")
    at.text_input(key="train-folder").set_value("demo")  # holds the shipped checkpoint
    at.run()
    at.button(key="train-start").click()
    at.run()
    assert "already holds a checkpoint (epoch 2); resume it" in at.error[0].value
    at.number_input(key="train-epochs").set_value(2)
    at.button(key="train-resume").click()
    at.run()
    assert "has trained 2 epochs: set Epochs above 2" in at.error[0].value

    at.text_input(key="train-folder").set_value("../outside")
    at.run()
    assert "is not a usable folder name" in at.error[0].value  # the CLI's rule too

    at.text_input(key="train-folder").set_value("fresh")
    at.run()
    at.text_input(key="train-channels").set_value("8,x")
    at.run()
    at.button(key="train-start").click()
    at.run()
    assert "write numbers like 8,16,32" in at.error[0].value
    assert not Path("checkpoints/fresh").exists()

    # A run that failed: its own error line, not a traceback.
    jobs.start(Path("data/nope"), Path("checkpoints/broken"), jobs.JobOptions(epochs=1))
    assert jobs.wait(Path("checkpoints/broken"), timeout=120).state == "failed"
    at.text_input(key="train-folder").set_value("broken")
    at.run()
    assert not at.exception
    assert "Training failed:" in at.error[0].value and "no dataset folder here" in at.error[0].value


def _note_downloads(monkeypatch) -> dict[str, Callable[[], bytes]]:
    """The callables of the page's deferred downloads by file name, as Streamlit registers
    them (AppTest forgets them after the run); calling one is clicking its button."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    noted: dict[str, Callable[[], bytes]] = {}
    register = MediaFileManager.add_deferred

    def noting(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        noted[file_name] = data_callable
        return register(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", noting)
    return noted


@pytest.mark.slow  # 80 MB written, a page run under tracemalloc, then zipped
def test_viewing_a_large_checkpoint_zips_nothing_until_the_download_is_clicked(
    workspace: Path, monkeypatch
) -> None:
    """Issue 23, finding 2: the page zipped the whole checkpoint on every view and kept the
    bytes (st.cache_data, the button): an 80 MB model.pt cost over 160 MB per view. Now the
    view allocates under 40 MB (tracemalloc's peak of Python memory) and holds no payload;
    the click zips it from disk."""
    import io
    import os
    import tracemalloc
    import zipfile

    big = Path("checkpoints/big")
    shutil.copytree("checkpoints/demo", big)
    weights = big / ck.WEIGHTS_FILE
    with weights.open("wb") as f:  # incompressible, as trained weights nearly are
        for _ in range(80):
            f.write(os.urandom(2**20))
    clicks = _note_downloads(monkeypatch)
    at = open_page("train")
    at.text_input(key="train-folder").set_value("big")
    tracemalloc.start()
    try:
        at.run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not at.exception
    download = at.main.get("download_button")[0].proto
    assert download.label == "Download checkpoint big.zip"
    assert download.deferred_file_id and not download.url  # nothing built for the view
    assert peak < 40 * 2**20, f"{peak / 2**20:.0f} MB allocated by one view"

    with zipfile.ZipFile(io.BytesIO(clicks["big.zip"]())) as zf:  # the click
        assert zf.read(f"big/{ck.WEIGHTS_FILE}") == weights.read_bytes()
        assert f"big/{ck.CONFIG_FILE}" in zf.namelist()


def test_no_dataset_says_where_to_make_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    at = open_page("train")
    assert not at.exception
    assert "No dataset yet" in at.info[0].value


@pytest.mark.slow
def test_export_offers_the_checkpoint_as_an_onnx_zip(workspace: Path, monkeypatch) -> None:
    """Export to ONNX, then the zip's download: a real export of the demo checkpoint, whose
    decoder runs in ONNX Runtime as the checkpoint does in PyTorch."""
    import io
    import zipfile

    import numpy as np
    import onnxruntime as ort
    import torch

    clicks = _note_downloads(monkeypatch)
    at = open_page("train")
    at.text_input(key="train-folder").set_value("demo")
    at.run()
    labels = [d.proto.label for d in at.main.get("download_button")]
    assert labels == ["Download checkpoint demo.zip"]  # no export until asked for
    at.button(key="train-export").click()
    at.run()
    assert not at.exception and not at.error
    download = at.main.get("download_button")[1].proto
    assert download.label == "Download export-demo-onnx.zip"

    assert download.deferred_file_id and not download.url  # read from disk when clicked
    with zipfile.ZipFile(io.BytesIO(clicks["export-demo-onnx.zip"]())) as zf:
        assert sorted(zf.namelist()) == [
            f"export-demo-onnx/{name}"
            for name in ("decoder.onnx", "decoder_mix.onnx", "encoder.onnx", "export.json")
        ]
        decoder = ort.InferenceSession(zf.read("export-demo-onnx/decoder.onnx"))
    z = np.full((1, 4), 0.5, np.float32)
    model = ck.load_checkpoint("checkpoints/demo").model
    with torch.no_grad():
        want = model.decode(torch.from_numpy(z), [2]).numpy()
    got = decoder.run(None, {"z": z, "label": np.array([2])})[0]
    assert np.abs(got - want).max() < 1e-4

    at.run()  # the offer stays for this checkpoint
    assert [d.proto.label for d in at.main.get("download_button")][1].startswith("Download export")
    assert not Path("checkpoints/demo/export.json").exists()  # nothing written beside it


@pytest.mark.slow
def test_after_stop_the_hint_follows_the_epochs_box(workspace: Path) -> None:
    """Issue 24, item 9: stopped after epoch k with Epochs already past k, the page says to
    press Resume (to epoch N), not to "set Epochs above k"; with Epochs at k, it says that."""
    folder = Path("checkpoints/stopped")
    options = jobs.JobOptions(epochs=100_000, channels=(8, 16), latent_dim=4, batch_size=8)
    jobs.start(Path("data/demo"), folder, options)
    deadline = time.monotonic() + 120
    while not (folder / ck.CONFIG_FILE).is_file() or not _epochs(folder):
        assert time.monotonic() < deadline and jobs.status(folder).running
        time.sleep(0.2)
    jobs.stop(folder)
    assert jobs.wait(folder, timeout=60).state == "stopped"
    kept = ck.read_config(folder)["epoch"]

    at = open_page("train", **{"train-last-folder": "stopped"})
    assert not at.exception
    assert at.number_input(key="train-epochs").value == 100_000  # the run's own setting
    said = [i.value for i in at.info if "Stopped after epoch" in i.value]
    assert said == [
        f"Stopped after epoch {kept}; its checkpoint is kept. To train on, press Resume to "
        "train on to epoch 100000."
    ]
    at.number_input(key="train-epochs").set_value(kept).run()
    said = [i.value for i in at.info if "Stopped after epoch" in i.value]
    assert said[0].endswith(f"To train on, set Epochs above {kept} and press Resume.")


@pytest.mark.slow
def test_a_stop_before_the_first_epoch_says_nothing_was_saved_and_offers_start(
    workspace: Path,
) -> None:
    """Stopped while starting up (SIGTERM before the first epoch ends): no model.pt, so the
    page says so and offers Start again, not Resume."""
    folder = Path("checkpoints/early")
    options = jobs.JobOptions(epochs=100_000, channels=(8, 16), latent_dim=4, batch_size=8)
    jobs.start(Path("data/demo"), folder, options)
    assert jobs.stop(folder) is not None  # the child is still importing torch
    assert jobs.wait(folder, timeout=60).state == "stopped"
    assert not ck.has_checkpoint(folder)

    at = open_page("train", **{"train-last-folder": "early"})
    assert not at.exception
    info = [i.value for i in at.info]
    assert any("Stopped before the first epoch finished, so nothing was saved" in i for i in info)
    assert not any("Stopped after epoch" in i for i in info)
    assert at.button(key="train-resume").disabled
    start = at.button(key="train-start")
    assert not start.disabled and start.label == "Start again"

    _set_tiny(at, epochs=1)
    at.button(key="train-start").click()
    _poll(at, lambda: bool(at.success))
    assert _epochs(folder) == [1] and ck.has_checkpoint(folder)


# ------------------------------------------------------------------------------ stage 2


def _sharpen_lines(folder: Path) -> list[dict]:
    return [r for r in ck.read_metrics(folder) if r["event"] == "sharpen"]


def _stage_traces(at) -> dict[str, dict]:
    """The stage chart's traces by name (critic, adversarial, features, train, val)."""
    return {trace["name"]: trace for trace in chart_traces(at, "train-sharpen-loss")}


def test_the_stage_chart_reads_the_sharpen_lines(workspace: Path) -> None:
    """A checkpoint sharpened for 2 of 5 stage epochs (two "sharpen" lines after stage 1's
    two epochs): the stage's chart draws each loss per epoch, counting on from stage 1, its
    settings are the stage's, and stage 1 no longer offers Resume."""
    folder = Path("checkpoints/demo")
    losses = [
        dict(critic=1.5, adversarial=0.8, features=0.25, spectral=0.004, val_spectral=0.005),
        dict(critic=1.2, adversarial=0.9, features=0.2, spectral=0.003, val_spectral=None),
    ]
    for k, values in enumerate(losses, start=1):
        line = {"event": "sharpen", "epoch": 2 + k, "stage_epoch": k, "stage_epochs": 5,
                **values, "seconds": 2.0, "time": f"2026-01-01T00:00:0{2 * k}+00:00"}  # fmt: skip
        ck.append_jsonl(folder / ck.METRICS_FILE, line)
    record = {"format_version": 1, "base_epoch": 2, "stage_epoch": 2,
              "config": {"epochs": 5, "batch_size": 16, "lr": 5e-5}}  # fmt: skip
    (folder / "sharpen.json").write_text(json.dumps(record))

    at = open_page("train", **{"train-last-folder": "demo"})
    assert not at.exception and not at.error
    assert "Sharpen (stage 2)" in [s.value for s in at.subheader]
    traces = _stage_traces(at)
    assert sorted(traces) == ["adversarial", "critic", "features", "train", "val"]
    for name, key in (("critic", "critic"), ("adversarial", "adversarial"),
                      ("features", "features"), ("train", "spectral")):  # fmt: skip
        assert list(traces[name]["x"]) == [3, 4], name
        assert list(traces[name]["y"]) == [r[key] for r in losses], name
    assert list(traces["val"]["x"]) == [3] and list(traces["val"]["y"]) == [0.005]
    assert list(traces["critic"]["customdata"]) == [1, 2]  # the stage epochs, on hover
    assert _val_epochs(at) == [1, 2]  # stage 1's curves stay as they were
    assert _progress(at)[0].proto.text.startswith("Sharpen (stage 2): stage epoch 2/5")

    drawn = {w.key for kind in ("number_input", "selectbox") for w in at.get(kind)}
    for name in SHARPEN_FIELDS:  # each drawn from its Option (the judge: only with judges)
        assert name == "judge" or SHARPEN_KEYS[name] in drawn, name
    assert at.number_input(key="train-sharpen-epochs").value == 5  # sharpen.json's settings
    assert at.number_input(key="train-sharpen-batch-size").value == 16
    assert at.number_input(key="train-sharpen-lr").value == 5e-5
    assert at.number_input(key="train-sharpen-critic-lr").value == 4e-4  # the default
    assert at.button(key="train-resume").disabled  # stage 1 cannot resume a sharpened model
    assert any("cannot resume here" in c.value for c in at.caption)
    assert at.button(key="train-sharpen-start").disabled  # begun: Resume sharpening goes on
    assert not at.button(key="train-sharpen-resume").disabled
    assert at.button(key="train-sharpen-stop").disabled

    at.number_input(key="train-sharpen-epochs").set_value(2)
    at.button(key="train-sharpen-resume").click()
    at.run()
    assert "is sharpened 2 stage epochs: set Sharpen epochs above 2" in at.error[0].value

    # A folder without a checkpoint has no stage 2 to offer.
    at.text_input(key="train-folder").set_value("fresh").run()
    assert not at.exception
    assert "Sharpen (stage 2)" not in [s.value for s in at.subheader]
    assert not [b for b in at.button if b.key == "train-sharpen-start"]


@pytest.mark.slow
def test_sharpen_runs_stage_2_live_reattaches_stops_and_resumes(workspace: Path) -> None:
    folder = Path("checkpoints/demo").absolute()
    at = open_page("train", **{"train-last-folder": "demo"})
    assert not at.button(key="train-sharpen-start").disabled
    assert at.button(key="train-sharpen-resume").disabled  # nothing sharpened yet
    at.number_input(key="train-sharpen-epochs").set_value(10_000)  # its widget's most
    at.number_input(key="train-sharpen-batch-size").set_value(8)  # in the Advanced expander
    at.number_input(key="train-sharpen-shift-frames").set_value(2)
    at.button(key="train-sharpen-start").click()
    at.run()
    assert not at.error and not at.exception
    job = jobs.read_job(folder)
    assert job["kind"] == "sharpen"
    argv = job["command"]
    trained_on = ck.read_config(folder)["dataset"]["path"]  # the data stage 1 trained on
    assert argv[1:7] == ["-m", "vae", "sharpen", str(folder), "--data", trained_on]
    for flag, value in (("--epochs", "10000"), ("--batch-size", "8"), ("--shift-frames", "2")):
        assert argv[argv.index(flag) + 1] == value
    assert "--resume" not in argv
    _poll(at, lambda: len(chart_traces(at, "train-sharpen-loss")[0]["x"]) >= 1)  # live
    assert list(_stage_traces(at)["critic"]["x"])[0] == 3  # after stage 1's 2 epochs
    assert _progress(at)[0].proto.text.startswith("Sharpen (stage 2): stage epoch")

    # A new session (a reloaded page) finds the stage running and follows it.
    other = open_page("train")
    assert not other.exception
    assert other.text_input(key="train-folder").value == "demo"
    assert any(f"Sharpening process {job['pid']}" in c.value for c in other.caption)
    assert other.number_input(key="train-sharpen-epochs").value == 10_000  # the job's own
    assert other.number_input(key="train-sharpen-batch-size").value == 8
    assert other.button(key="train-stop").disabled  # stage 1's Stop: no stage-1 run
    assert other.button(key="train-sharpen-start").disabled
    other.button(key="train-sharpen-stop").click()
    _poll(other, lambda: any("Stopped after stage epoch" in i.value for i in other.info), 60)
    kept = json.loads((folder / "sharpen.json").read_text())["stage_epoch"]
    assert kept >= 1 and [r["stage_epoch"] for r in _sharpen_lines(folder)] == list(
        range(1, kept + 1)
    )
    assert f"Stopped after stage epoch {kept}" in other.info[-1].value

    other.number_input(key="train-sharpen-epochs").set_value(kept + 1)
    other.button(key="train-sharpen-resume").click()
    _poll(other, lambda: bool(other.success))
    assert jobs.read_job(folder)["command"][-1] == "--resume"
    assert f"Sharpened {kept + 1} stage epochs" in other.success[0].value
    assert list(_stage_traces(other)["critic"]["x"]) == list(range(3, kept + 4))
    assert ck.read_config(folder)["epoch"] == 2 + kept + 1
    assert other.button(key="train-resume").disabled
    assert other.session_state["studio-checkpoint"] == str(Path("checkpoints/demo"))


@pytest.mark.slow
def test_a_judge_scores_the_stage_and_keeps_its_best(workspace: Path) -> None:
    """With a judge in the workspace, the stage offers it (none chosen: stage 1 had none);
    the chosen one reaches the command, scores the stage epoch and keeps the best."""
    from vae.data.dataset import load_dataset
    from vae.evaluation.judge_training import JudgeTraining, train_judge

    train_judge(
        load_dataset("data/demo"), Path("judges/demo"), JudgeTraining(epochs=1, batch_size=8)
    )
    folder = Path("checkpoints/demo").absolute()
    at = open_page("train", **{"train-last-folder": "demo"})
    assert at.selectbox(key="train-sharpen-judge").value is None
    at.selectbox(key="train-sharpen-judge").set_value("judges/demo")
    at.number_input(key="train-sharpen-epochs").set_value(1)
    at.number_input(key="train-sharpen-batch-size").set_value(8)
    at.button(key="train-sharpen-start").click()
    at.run()
    assert not at.error and not at.exception
    argv = jobs.read_job(folder)["command"]
    assert argv[argv.index("--judge") + 1] == str(Path("judges/demo").absolute())
    assert jobs.wait(folder, timeout=180).state == "done"
    judged = [r for r in ck.read_metrics(folder) if r["event"] == "judge"]
    assert [r["epoch"] for r in judged] == [3]  # the stage epoch, counting on from stage 1
    assert (folder / ck.BEST_DIR / ck.WEIGHTS_FILE).is_file()
    again = open_page("train", **{"train-last-folder": "demo"})  # a new session: the stage's
    assert again.selectbox(key="train-sharpen-judge").value == "judges/demo"
    (folder / jobs.JOB_FILE).unlink()  # as if sharpened by the CLI: sharpen.json's absolute path
    again = open_page("train", **{"train-last-folder": "demo"})
    assert again.selectbox(key="train-sharpen-judge").value == "judges/demo"
