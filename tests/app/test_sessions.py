"""Two people at once: app sessions keep their own state, and two trainings never share a
checkpoint folder. Each AppTest is its own session (its own ``st.session_state``), as two
browser tabs are; the runs are real ``python -m vae train`` processes."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.apptest import open_page
from vae.jobs import runner as jobs
from vae.model import checkpoints as ck

TINY = dict(channels=(8, 16), batch_size=8)


@pytest.fixture
def workspace(studio_copy: Path) -> Path:
    """The studio copy with a second checkpoint ``other``, older than ``demo``."""
    shutil.copytree(studio_copy / "checkpoints" / "demo", studio_copy / "checkpoints" / "other")
    for file in (studio_copy / "checkpoints" / "other").iterdir():
        file.touch()
    time.sleep(0.01)
    (studio_copy / "checkpoints" / "demo" / "config.json").touch()  # demo stays the newest
    return studio_copy


def _epochs(folder: Path) -> list[int]:
    return [r["epoch"] for r in ck.read_metrics(folder) if r["event"] == "epoch"]


@pytest.mark.slow
def test_two_sessions_keep_their_own_checkpoint_and_map_picks(workspace: Path) -> None:
    picker = "sidebar-checkpoint"
    alice, bob = open_page("explore"), open_page("explore")
    assert alice.sidebar.selectbox(key=picker).value == "checkpoints/demo"
    alice.sidebar.selectbox(key=picker).set_value("checkpoints/other").run()
    alice.session_state["studio-selected"] = ["demo/a", "demo/b"]

    bob.run()
    assert bob.sidebar.selectbox(key=picker).value == "checkpoints/demo"
    assert "studio-selected" not in bob.session_state
    for at in (alice, bob):  # a page change keeps each session's own choice
        at.switch_page("app_pages/synthesise.py").run()
        assert not at.exception
    assert alice.sidebar.selectbox(key=picker).value == "checkpoints/other"
    assert bob.sidebar.selectbox(key=picker).value == "checkpoints/demo"
    assert alice.session_state["studio-selected"] == ["demo/a", "demo/b"]


@pytest.mark.slow
def test_two_starts_at_once_give_one_run_and_one_clear_refusal(workspace: Path) -> None:
    folder = Path("checkpoints/race")
    options = jobs.JobOptions(epochs=2, latent_dim=4, **TINY)
    gate, outcomes = threading.Barrier(2), []

    def press_start() -> None:
        gate.wait()
        try:
            outcomes.append(jobs.start(Path("data/demo"), folder, options).pid)
        except ValueError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=press_start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    pids = [o for o in outcomes if isinstance(o, int)]
    refusals = [o for o in outcomes if isinstance(o, str)]
    assert len(pids) == 1 and len(refusals) == 1, outcomes
    assert "is already writing this checkpoint" in refusals[0]
    assert jobs.read_job(folder)["pid"] == pids[0]
    assert jobs.wait(folder, timeout=120).state == "done"
    assert _epochs(folder) == [1, 2]  # one run's epochs, each once
    assert "error" not in (folder / jobs.LOG_FILE).read_text().lower()


@pytest.mark.slow
def test_two_sessions_train_side_by_side_and_the_busy_folder_is_refused(workspace: Path) -> None:
    alice, bob = open_page("train"), open_page("train")
    for at, name, latent in ((alice, "alice", 3), (bob, "bob", 5)):
        at.text_input(key="train-folder").set_value(name)
        at.text_input(key="train-channels").set_value("8,16")
        at.number_input(key="train-latent-dim").set_value(latent)
        at.number_input(key="train-batch-size").set_value(8)
        at.number_input(key="train-epochs").set_value(100_000 if name == "alice" else 2)
        at.run()
    alice.button(key="train-start").click().run()
    assert not alice.exception and not alice.error

    # Bob types Alice's folder: he may follow her run but cannot start another into it.
    bob.text_input(key="train-folder").set_value("alice").run()
    assert bob.button(key="train-start").disabled and not bob.button(key="train-stop").disabled
    with pytest.raises(ValueError, match="already writing this checkpoint"):
        jobs.start(Path("data/demo"), Path("checkpoints/alice"), jobs.JobOptions(epochs=1))

    bob.text_input(key="train-folder").set_value("bob").run()
    bob.button(key="train-start").click().run()
    assert not bob.exception and not bob.error
    assert jobs.wait(Path("checkpoints/bob"), timeout=120).state == "done"
    assert jobs.status(Path("checkpoints/alice")).running  # Bob's run left Alice's alone

    deadline = time.monotonic() + 60
    while not _epochs(Path("checkpoints/alice")) and time.monotonic() < deadline:
        time.sleep(0.2)
    alice.button(key="train-stop").click().run()
    assert jobs.wait(Path("checkpoints/alice"), timeout=60).state == "stopped"
    assert ck.read_config("checkpoints/alice")["model_config"]["latent_dim"] == 3
    assert ck.read_config("checkpoints/bob")["model_config"]["latent_dim"] == 5
    assert _epochs(Path("checkpoints/bob")) == [1, 2]
    alice_epochs = _epochs(Path("checkpoints/alice"))
    assert alice_epochs == list(range(1, len(alice_epochs) + 1))
