"""The judge: a classifier trained on real clips hears what reconstructions and samples say,
as audio, and its embeddings measure how far whole sets are from the real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vae.audio.features import FeatureConfig
from vae.audio.metrics import waveform_fine_structure
from vae.data.dataset import load_dataset, preprocess
from vae.data.sources import make_demo_set
from vae.evaluation.distribution import frechet_distance, inception_score
from vae.evaluation.evaluate import evaluate_with_judge, interpolation_monotonicity
from vae.evaluation.judge import JUDGE_FORMAT_VERSION, Judge, JudgeConfig, log_mel
from vae.evaluation.judge_training import JudgeTraining, augment_waves, train_judge
from vae.synthesis.inference import Synthesiser

CFG = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)


@pytest.fixture(scope="module")
def demo_judge(tmp_path_factory) -> tuple[Judge, dict, object]:
    """A judge trained on the audio of 100 demo clips (5 classes)."""
    root = tmp_path_factory.mktemp("judge")
    clips = make_demo_set(root / "clips", n_per_class=20, seed=1)
    preprocess(clips, root / "data", CFG, val_fraction=0.2, seed=0)
    ds = load_dataset(root / "data")
    report = train_judge(ds, root / "judge", JudgeTraining(epochs=12, batch_size=16))
    return Judge.load(root / "judge"), report, ds


@pytest.fixture(scope="module")
def quick_judge(quick_judge_dir, demo_dataset_dir) -> tuple[Judge, None, object]:
    """As ``demo_judge``, of a judge trained one epoch: for the tests that ask nothing of
    its accuracy (no training report)."""
    return Judge.load(quick_judge_dir), None, load_dataset(demo_dataset_dir)


@pytest.mark.slow
def test_the_judge_learns_the_demo_classes_from_audio_and_reloads(demo_judge):
    judge, report, ds = demo_judge
    assert report["val_accuracy"] >= 0.9, report
    assert report["val_accuracy_phase_copies"] >= 0.8, report  # Griffin-Lim copies too
    assert judge.label_names == ["falling", "noise", "pulses", "rising", "tone"]
    assert judge.sample_rate == 8000 and judge.config.clip_samples == 4096
    val = ds.split_indices("val")
    probs = judge.probabilities(ds.waveforms[val], sample_rate=8000)
    assert probs.shape == (len(val), 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((probs.argmax(axis=1) == ds.label_indices[val]).mean())
    assert accuracy == pytest.approx(report["val_accuracy"])  # the saved, last epoch
    saved = json.loads((Path(ds.root).parent / "judge" / "judge.json").read_text())
    assert saved["format_version"] == JUDGE_FORMAT_VERSION == 2
    assert saved["judge_config"]["sample_rate"] == 8000 and "feature_config" not in saved


def test_it_hears_its_own_analysis_not_the_dataset_features(quick_judge):
    judge, _, ds = quick_judge
    cfg = JudgeConfig.for_audio(8000, 8128, 10)
    assert (cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.n_frames) == (512, 128, 64, 64)
    assert JudgeConfig.for_audio(16000, 16000, 3).n_fft == 1024
    waves = torch.from_numpy(np.asarray(ds.waveforms[:3]) * 1.0)
    spec = log_mel(waves, judge.config)
    assert tuple(spec.shape) == (3, judge.config.n_mels, judge.config.n_frames)
    quiet = log_mel(waves * 0.01, judge.config)
    np.testing.assert_allclose(quiet.numpy(), spec.numpy(), atol=1e-3)  # level does not matter
    assert np.abs(spec.mean(dim=(-2, -1)).numpy()).max() < 1e-4  # per clip: zero mean
    with pytest.raises(ValueError, match="16000 Hz.*judge hears 8000 Hz"):
        judge.probabilities(ds.waveforms[:2], sample_rate=16000)


def test_embeddings_are_pooled_penultimate_features_batched_and_deterministic(quick_judge):
    judge, _, ds = quick_judge
    waves = np.asarray(ds.waveforms[:20])
    emb = judge.embed(waves)
    assert emb.shape == (20, judge.config.channels[-1])
    np.testing.assert_array_equal(judge.embed(waves), emb)  # eval mode: no dropout, no noise
    one_by_one = np.concatenate([judge.embed(waves[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(one_by_one, emb[:5], rtol=1e-4, atol=1e-5)
    probs, again = judge.listen(waves)
    np.testing.assert_array_equal(again, emb)
    logits = judge.model.head(torch.from_numpy(emb))  # the final linear layer
    np.testing.assert_allclose(logits.softmax(-1).detach().numpy(), probs, atol=1e-5)
    longer = np.pad(waves, ((0, 0), (0, 100)))  # a longer clip is cut to the judge's length
    np.testing.assert_allclose(judge.embed(longer), emb, atol=1e-5)


def test_augmentation_keeps_shape_and_range_and_changes_the_clips():
    gen = torch.Generator().manual_seed(0)
    x = torch.sin(torch.linspace(0, 300, 4096)).repeat(8, 1)
    out = augment_waves(x, gen, JudgeTraining())
    assert out.shape == x.shape and out.abs().max() <= 1.0
    assert not torch.allclose(out, x)
    same = augment_waves(x, gen, JudgeTraining(max_shift=0, noise_prob=0, gain_db=(0, 0)))
    torch.testing.assert_close(same, x)
    with pytest.raises(ValueError, match="noise_prob=2"):
        JudgeTraining(noise_prob=2)


def test_a_version_1_judge_is_refused_with_the_file_and_the_command(tmp_path):
    v1 = {
        "format_version": 1,
        "judge_config": {"n_bins": 128, "n_frames": 33, "n_labels": 5, "channels": [16]},
        "label_names": ["a", "b", "c", "d", "e"],
        "feature_config": CFG.to_dict(),
    }
    (tmp_path / "judge.json").write_text(json.dumps(v1))
    (tmp_path / "judge.pt").write_bytes(b"old weights")
    with pytest.raises(ValueError) as err:
        Judge.load(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "judge.json") in message
    assert "judge format 1 is not 2" in message
    assert "python -m vae judge DATA --out DIR" in message


def test_a_broken_judge_folder_names_the_file_and_the_fix(tmp_path, quick_judge):
    with pytest.raises(ValueError, match="not a judge.*python -m vae judge"):
        Judge.load(tmp_path)
    judge, _, _ = quick_judge
    info = {**judge.info, "judge_config": {**judge.info["judge_config"]}}
    (tmp_path / "judge.json").write_text(json.dumps(info))
    (tmp_path / "judge.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="judge.pt: truncated or corrupt.*python -m vae judge"):
        Judge.load(tmp_path)
    info["judge_config"]["n_mels"] = 0
    (tmp_path / "judge.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="judge.json: damaged judge config.*n_mels=0"):
        Judge.load(tmp_path)


@pytest.mark.slow
def test_a_hostile_judge_folder_is_refused_before_it_is_built(tmp_path, demo_judge):
    judge, _, _ = demo_judge
    info = {**judge.info, "judge_config": {**judge.info["judge_config"]}}
    state = {k: v.clone() for k, v in judge.model.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    (tmp_path / "judge.json").write_text(json.dumps(info))
    torch.save(state, tmp_path / "judge.pt")
    with pytest.raises(ValueError, match=f"judge.pt: tensor '{name}' holds NaN"):
        Judge.load(tmp_path)
    info["judge_config"].update(n_fft=2**30, clip_samples=2**30)
    (tmp_path / "judge.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="judge.json: damaged judge config.*n_fft=1073741824"):
        Judge.load(tmp_path)
    (tmp_path / "judge.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="judge.json: not a judge .*nested too deep"):
        Judge.load(tmp_path)


def test_judge_needs_labels(tmp_path, demo_set_dir):
    preprocess(demo_set_dir, tmp_path / "data", CFG, labels="none")
    with pytest.raises(ValueError, match="needs every clip labelled"):
        train_judge(load_dataset(tmp_path / "data"), tmp_path / "judge")


@pytest.fixture(scope="module")
def studio_report(studio_root, demo_judge) -> dict:
    judge, _, _ = demo_judge
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    ds = load_dataset(studio_root / "data" / "demo")
    return evaluate_with_judge(synth, ds, judge, samples_per_label=4, seed=3)


@pytest.mark.slow
def test_evaluate_with_the_judge_reports_real_reconstructed_and_sampled(
    studio_root, demo_judge, studio_report
):
    judge, _, _ = demo_judge
    report = studio_report
    ds = load_dataset(studio_root / "data" / "demo")
    n_val = len(ds.split_indices("val"))
    for part in ("real", "phase_copies", "reconstructed"):
        assert 0.0 <= report[part]["accuracy"] <= 1.0
        assert np.array(report[part]["confusion"]).sum() == n_val
    assert report["real"]["accuracy"] >= 0.8  # real clips of the same 5 classes
    samples = report["samples"]
    assert np.array(samples["confusion"]).sum(axis=1).tolist() == [4] * 5
    assert set(samples["diversity"]["per_label"]) == set(judge.label_names)
    assert all(v > 0 for v in samples["diversity"]["per_label"].values())
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    again = evaluate_with_judge(synth, ds, judge, samples_per_label=4, seed=3)
    assert again["samples"]["confusion"] == samples["confusion"]  # seeded
    assert again["distribution"] == report["distribution"]


@pytest.mark.slow
def test_the_distribution_section_has_a_floor_below_noise(studio_root, demo_judge, studio_report):
    judge, _, _ = demo_judge
    ds = load_dataset(studio_root / "data" / "demo")
    dist = studio_report["distribution"]
    train, val = ds.split_indices("train"), ds.split_indices("val")
    assert dist["reference"] == {"split": "train", "clips": len(train)}
    for name, clips in (("real", len(val)), ("phase_copies", len(val)), ("samples", 20)):
        figures = dist[name]
        assert figures["clips"] == clips
        assert np.isfinite(figures["frechet"]) and figures["frechet"] >= 0
        assert 1.0 <= figures["inception_score"] <= 5.0
    assert dist["reconstructed"]["clips"] == len(val)
    # beside each Fréchet distance, the fine structure of the same audio and its ratio to real
    real_fine = dist["real"]["fine_structure_db"]["mean"]
    assert real_fine > 0 and dist["real"]["fine_structure_vs_real"] == 1.0
    assert real_fine == pytest.approx(
        float(waveform_fine_structure(ds.waveforms[val], ds.config).mean())
    )
    for name in ("phase_copies", "reconstructed", "samples"):
        assert dist[name]["fine_structure_vs_real"] == pytest.approx(
            dist[name]["fine_structure_db"]["mean"] / real_fine
        )
    # the floor is what the judge's own embeddings give, train vs val
    reference = judge.embed(ds.waveforms[train], 8000)
    real = judge.embed(ds.waveforms[val], 8000)
    assert dist["real"]["frechet"] == pytest.approx(frechet_distance(real, reference), rel=1e-6)
    noise = np.random.default_rng(0).normal(0, 0.3, (len(val), ds.config.clip_samples))
    probs, heard = judge.listen(noise)
    assert dist["real"]["frechet"] < frechet_distance(heard, reference) / 2
    # real clips: one of each label, each heard clearly; noise: all heard alike
    assert dist["real"]["inception_score"] > 2.0 > 1.5 > inception_score(probs)
    assert dist["reconstructed_vs_phase"] == pytest.approx(
        dist["reconstructed"]["frechet"] / dist["phase_copies"]["frechet"]
    )
    assert dist["samples_vs_phase"] == pytest.approx(
        dist["samples"]["frechet"] / dist["phase_copies"]["frechet"]
    )
    assert dist["samples_is_vs_real"] == pytest.approx(
        dist["samples"]["inception_score"] / dist["real"]["inception_score"]
    )
    json.dumps(studio_report, allow_nan=False)  # plain JSON: the CLI prints it


def test_a_judge_of_another_rate_or_labels_is_refused(studio_root, quick_judge):
    import dataclasses

    from vae.evaluation.judge import JudgeNet

    judge, _, _ = quick_judge
    synth = Synthesiser.load(studio_root / "checkpoints" / "demo")
    ds = load_dataset(studio_root / "data" / "demo")
    other = Judge(JudgeNet(dataclasses.replace(judge.config, sample_rate=16000)), judge.info)
    with pytest.raises(ValueError, match="8000 Hz, but the judge hears 16000 Hz"):
        evaluate_with_judge(synth, ds, other, samples_per_label=0)
    renamed = Judge(judge.model, {**judge.info, "label_names": list("abcde")})
    with pytest.raises(ValueError, match="not the judge's"):
        interpolation_monotonicity(synth, ds, renamed, pairs=2, steps=3)


@pytest.mark.slow
def test_interpolation_monotonicity_counts_pairs_of_different_labels(studio_root, demo_judge):
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
