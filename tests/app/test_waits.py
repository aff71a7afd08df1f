"""Every wait over a second shows what is happening (issue 26 item 4). Where the library
reports progress (``progress(done, total)``), the page's bar follows it to the end and names
the step; the other waits are spinners, which AppTest does not keep after the run."""

from __future__ import annotations

import shutil

import pytest

from tests.apptest import open_page


def _bars(at) -> dict[str, int]:
    """The page's progress bars after the run: text -> value (0-100)."""
    return {bar.proto.text: bar.proto.value for bar in at.get("progress")}


def test_making_the_demo_set_and_preprocessing_it_fill_their_bars(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    at = open_page("dataset")
    at.number_input(key="dataset-demo-n").set_value(2)
    at.button(key="dataset-demo").click().run()
    assert not at.exception and not at.error
    assert _bars(at) == {"Generating clips: 10/10": 100}  # 5 labels x 2 clips
    # (Preprocessing's bar fills the same way; the page reruns after it, so none is left.)


@pytest.mark.slow
def test_the_evaluation_bars_reach_the_end_of_each_step(studio_root, tmp_path, monkeypatch):
    shutil.copytree(studio_root, tmp_path / "ws")  # the judge is written under judges/
    monkeypatch.chdir(tmp_path / "ws")
    at = open_page("evaluate")
    at.button(key="evaluate-run").click().run()
    assert not at.exception and not at.error
    clips = at.subheader[0].value.split()[0]  # "5 validation clips, checkpoint epoch 2"
    assert _bars(at) == {f"Reconstructing: {clips}/{clips}": 100}

    at.button(key="evaluate-train-judge").click().run()  # its bar goes with the page's rerun
    assert not at.exception and not at.error
    at.number_input(key="evaluate-samples").set_value(3).run()
    at.button(key="evaluate-run").click().run()
    assert not at.exception and not at.error
    bars = _bars(at)
    judging = [text for text in bars if text.startswith("Judging: ")]
    assert len(bars) == 2 and bars[f"Reconstructing: {clips}/{clips}"] == 100
    assert len(judging) == 1 and bars[judging[0]] == 100
    done, total = judging[0].removeprefix("Judging: ").split("/")
    assert done == total and int(total) > int(clips)  # real, reconstructed and sampled clips
