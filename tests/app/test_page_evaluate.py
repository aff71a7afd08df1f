"""Evaluate page (AppTest): train a judge, run the evaluation, see realism first (Fréchet
distance, fine structure), then accuracy: bars and a confusion matrix."""

import json
import shutil

import numpy as np
import pytest

from tests.apptest import chart_traces, forget_training_data, open_page


@pytest.mark.slow
def test_train_a_judge_then_evaluate_the_checkpoint(studio_root, tmp_path, monkeypatch):
    shutil.copytree(studio_root, tmp_path / "ws")  # the judge is written under judges/
    monkeypatch.chdir(tmp_path / "ws")
    at = open_page("evaluate")
    assert not at.exception
    assert at.selectbox(key="evaluate-judge").options == []
    assert "Run the evaluation" in at.info[0].value
    at.button(key="evaluate-run").click().run()  # no judge yet: realism by fine structure
    assert not at.exception and not at.error
    table = at.table[0].value
    assert [s.split(",")[0] for s in table["set"]] == [
        "real clips (val)",
        "phase copies of them",
        "reconstructions",
    ]
    assert set(table["Fréchet distance"]) == {"–"} and table["x real clips"].tolist()[0] == "1.00"
    assert any("need a judge" in c.value for c in at.caption)
    at.button(key="evaluate-train-judge").click().run()
    assert not at.exception and not at.error
    assert (tmp_path / "ws" / "judges" / "demo" / "judge.pt").is_file()
    assert at.selectbox(key="evaluate-judge").value == "judges/demo"

    at.number_input(key="evaluate-samples").set_value(3).run()
    at.button(key="evaluate-run").click().run()
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert labels[:4] == [
        "LSD, model",
        "SC, model",
        "LSD, Griffin-Lim alone",
        "SC, Griffin-Lim alone",
    ]
    assert "Judge on prior samples" in labels and "Diversity of samples" in labels
    bars = chart_traces(at, "evaluate-bars")
    assert [b["name"] for b in bars] == ["real clips", "reconstructions", "prior samples"]
    assert all(0.0 <= v <= 1.0 for b in bars for v in b["y"])
    matrix = chart_traces(at, "evaluate-confusion")[0]
    assert np.asarray(matrix["text"]).shape == (5, 5)
    at.radio(key="evaluate-which").set_value("prior samples").run()
    counts = np.asarray(chart_traces(at, "evaluate-confusion")[0]["text"])
    assert counts.sum(axis=1).tolist() == [3] * 5  # 3 samples asked of each label
    report = at.session_state["evaluate-reports"]["checkpoints/demo"]
    assert json.loads(json.dumps(report))["judge"]["samples"]["per_label_samples"] == 3
    table = at.table[0].value  # realism leads: one row per set, before any accuracy
    assert list(table.columns) == [
        "set",
        "Fréchet distance",
        "x phase copies",
        "fine structure (dB)",
        "x real clips",
        "inception score",
    ]
    assert [s.split(",")[0] for s in table["set"]] == [
        "real clips (val)",
        "phase copies of them",
        "reconstructions",
        "prior samples",
    ]
    dist = report["judge"]["distribution"]
    assert table["Fréchet distance"].tolist()[2] == f"{dist['reconstructed']['frechet']:.2f}"
    assert table["x phase copies"].tolist()[1] == "1.00"
    fine = [f"{dist[k]['fine_structure_db']['mean']:.2f}" for k in ("real", "samples")]
    assert table["fine structure (dB)"].tolist()[::3] == fine
    assert table["x real clips"].tolist()[0] == "1.00"
    assert table["x real clips"].tolist()[3] == f"{dist['samples']['fine_structure_vs_real']:.2f}"
    markdown = [m.value for m in at.markdown]
    assert markdown.index(next(m for m in markdown if m.startswith("**Realism"))) < next(
        i for i, m in enumerate(markdown) if m.startswith("**Accuracy")
    )
    assert any("Fréchet distance between the judge's embeddings" in c.value for c in at.caption)
    assert not any("predates" in c.value for c in at.caption)


def test_without_a_dataset_it_says_what_to_do(studio_root, tmp_path, monkeypatch):
    shutil.copytree(studio_root / "checkpoints", tmp_path / "checkpoints")
    forget_training_data(tmp_path / "checkpoints" / "demo")
    monkeypatch.chdir(tmp_path)
    at = open_page("evaluate")
    assert not at.exception
    assert "preprocess one" in at.info[0].value
