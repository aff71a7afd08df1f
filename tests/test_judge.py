"""The judge: a classifier trained on real clips names what reconstructions and samples say."""

from __future__ import annotations

import numpy as np
import pytest

from vae.dataset import load_dataset, preprocess
from vae.evaluate import evaluate_with_judge
from vae.features import FeatureConfig
from vae.inference import Synthesiser
from vae.judge import Judge, JudgeTraining, train_judge
from vae.sources import make_demo_set

CFG = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)


@pytest.fixture(scope="module")
def demo_judge(tmp_path_factory) -> tuple[Judge, dict, object]:
    """A judge trained on 100 demo clips (5 classes) with the studio workspace's features."""
    root = tmp_path_factory.mktemp("judge")
    clips = make_demo_set(root / "clips", n_per_class=20, seed=1)
    preprocess(clips, root / "data", CFG, val_fraction=0.2, seed=0)
    ds = load_dataset(root / "data")
    report = train_judge(ds, root / "judge", JudgeTraining(epochs=12, batch_size=16))
    return Judge.load(root / "judge"), report, ds


def test_the_judge_learns_the_demo_classes_and_reloads(demo_judge):
    judge, report, ds = demo_judge
    assert report["val_accuracy"] >= 0.9, report
    assert judge.label_names == ["falling", "noise", "pulses", "rising", "tone"]
    val = ds.split_indices("val")
    probs = judge.probabilities(ds.features[val])
    assert probs.shape == (len(val), 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((probs.argmax(axis=1) == ds.label_indices[val]).mean())
    assert accuracy == pytest.approx(report["val_accuracy"])  # the saved, last epoch


def test_a_broken_judge_folder_names_the_file_and_the_fix(tmp_path, demo_judge):
    with pytest.raises(ValueError, match="not a judge.*python -m vae judge"):
        Judge.load(tmp_path)
    judge, _, _ = demo_judge
    (tmp_path / "judge.json").write_text(
        '{"format_version": 1, "judge_config": '
        '{"n_bins": 128, "n_frames": 33, "n_labels": 5, '
        '"channels": [16, 32, 64, 128], "dropout": 0.2}, '
        '"label_names": ["a","b","c","d","e"], '
        f'"feature_config": {__import__("json").dumps(CFG.to_dict())}}}'
    )
    (tmp_path / "judge.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="judge.pt: unreadable"):
        Judge.load(tmp_path)


def test_judge_needs_labels(tmp_path, demo_set_dir):
    preprocess(demo_set_dir, tmp_path / "data", CFG, labels="none")
    with pytest.raises(ValueError, match="needs every clip labelled"):
        train_judge(load_dataset(tmp_path / "data"), tmp_path / "judge")


def test_evaluate_with_the_judge_reports_real_reconstructed_and_sampled(studio_root, demo_judge):
    judge, _, _ = demo_judge
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    ds = load_dataset(studio_root / "data" / "demo")
    report = evaluate_with_judge(synth, ds, judge, samples_per_label=4, seed=3)
    n_val = len(ds.split_indices("val"))
    for part in ("real", "reconstructed"):
        assert 0.0 <= report[part]["accuracy"] <= 1.0
        assert np.array(report[part]["confusion"]).sum() == n_val
    assert report["real"]["accuracy"] >= 0.8  # real clips of the same 5 classes
    samples = report["samples"]
    assert np.array(samples["confusion"]).sum(axis=1).tolist() == [4] * 5
    assert set(samples["diversity"]["per_label"]) == set(judge.label_names)
    assert all(v > 0 for v in samples["diversity"]["per_label"].values())
    again = evaluate_with_judge(synth, ds, judge, samples_per_label=4, seed=3)
    assert again["samples"]["confusion"] == samples["confusion"]  # seeded


def test_interpolation_monotonicity_counts_pairs_of_different_labels(studio_root, demo_judge):
    from vae.evaluate import interpolation_monotonicity

    judge, _, _ = demo_judge
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    ds = load_dataset(studio_root / "data" / "demo")
    report = interpolation_monotonicity(synth, ds, judge, pairs=6, steps=5, seed=1)
    assert report["pairs"] == 6 and report["steps"] == 5
    assert 0.0 <= report["monotonic_fraction"] <= 1.0
    assert 0.0 <= report["mean_start_prob"] <= 1.0 and 0.0 <= report["mean_end_prob"] <= 1.0
    # with no tolerance for wobbles the count can only fall
    strict = interpolation_monotonicity(synth, ds, judge, pairs=6, steps=5, seed=1, tolerance=0)
    assert strict["monotonic_fraction"] <= report["monotonic_fraction"]
