"""The shipped checkpoint ``checkpoints/fsdd-digits`` works on first launch, with no dataset on
disk: Explore, Interpolate, Synthesise and Evaluate's judge all run from the folder alone."""

import json
import shutil
from pathlib import Path

import pytest

from tests.apptest import audio_urls, chart_traces, open_page
from vae.evaluation.judge import Judge
from vae.synthesis.inference import Synthesiser

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "fsdd-digits"
pytestmark = pytest.mark.skipif(
    not (SHIPPED / "model.pt").is_file(), reason=f"no shipped checkpoint at {SHIPPED}"
)


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch) -> Path:
    """A workspace as a fresh clone has it: the shipped checkpoint and nothing else."""
    shutil.copytree(SHIPPED, tmp_path / "checkpoints" / "fsdd-digits")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_it_is_small_conditional_on_the_digits_and_carries_its_judge_and_card():
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size < 25 * 2**20
    synth = Synthesiser.load(SHIPPED)
    assert synth.conditional and synth.label_names == [str(d) for d in range(10)]
    assert synth.config.sample_rate == 8000  # the fsdd preset
    assert Judge.load(SHIPPED / "judge").label_names == synth.label_names
    report = json.loads((SHIPPED / "evaluation.json").read_text())
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    assert f"{report['judge']['real']['accuracy']:.1%}" in card


@pytest.mark.slow
def test_the_app_opens_on_it_and_its_pages_play_without_data(fresh_clone):
    at = open_page("home")
    assert "checkpoints/fsdd-digits" in at.success[0].value
    at = open_page("explore", **{"studio-selected": ["3_theo_12"]})
    assert not at.exception and not at.error
    assert len(audio_urls(at)) == 1  # the reconstruction, decoded from the stored mean
    at = open_page("interpolate")
    assert not at.exception and not at.error
    assert len(audio_urls(at)) == 3
    at = open_page("synthesise")
    assert not at.exception and not at.error
    at.selectbox(key="synth-label").set_value("7").run()
    assert chart_traces(at, "synth-spectrogram")[0]["z"].shape == (128, 128)


def test_evaluate_shows_the_stored_figures_before_any_data(fresh_clone):
    at = open_page("evaluate")
    assert not at.exception and not at.error
    assert "figures stored with the checkpoint" in at.info[0].value
    metrics = {m.label: m.value for m in at.metric}
    report = json.loads((SHIPPED / "evaluation.json").read_text())
    assert metrics["Judge on real clips"] == f"{report['judge']['real']['accuracy']:.1%}"
    bars = chart_traces(at, "evaluate-bars")
    assert [b["name"] for b in bars] == ["real clips", "reconstructions", "prior samples"]
    assert len(bars[2]["x"]) == 10  # one bar per digit
    if "distribution" not in report["judge"]:  # a report made before issue 13: no table
        assert not at.table


def test_its_stored_figures_meet_the_bars_it_was_built_for():
    """Issue 13's acceptance lines that the shipped model meets, on the FSDD validation split,
    from the evaluation.json that scripts/reproduce_fsdd_digits.py wrote beside the weights
    (issue 13's distance bars, LSD <= 2.5 dB and Fréchet ratios <= 2x / 3x, are not met: the
    README's account of the shipped model gives the figures)."""
    report = json.loads((SHIPPED / "evaluation.json").read_text())
    judge = report["judge"]
    assert report["split"] == "val" and report["clips"] == 300
    assert judge["real"]["accuracy"] >= 0.97
    assert judge["reconstructed"]["accuracy"] >= 0.97
    assert judge["samples"]["accuracy"] >= 0.95
    assert judge["samples"]["per_label_samples"] >= 200  # a steady figure per digit
    assert min(judge["samples"]["per_label"].values()) >= 0.85
    assert judge["interpolation"]["pairs"] == 100
    assert judge["interpolation"]["monotonic_fraction"] >= 0.85
    dist = judge["distribution"]
    assert dist["samples_is_vs_real"] >= 0.95
    # The floor: real validation clips sit closer to the training clips than anything made.
    floor = dist["real"]["frechet"]
    assert floor <= dist["phase_copies"]["frechet"] < dist["reconstructed"]["frechet"]
    assert report["phase"] == "griffin-lim"  # no vocoder ships: it lost to Griffin-Lim


def test_it_is_sharpened_and_meets_the_realism_bars_it_holds():
    """Issue 22's acceptance lines the stage-2 model meets: samples within 3x the Griffin-Lim
    copies' Fréchet distance (6.6x before), heard right >= 97 %, every digit >= 90 %, morphs
    >= 90 %; and its fine structure well above the 0.45 of the model before it (issue 22's
    bars of 0.85, reconstructions' 2.5x and LSD 3.8 dB are not met: the README's study)."""
    report = json.loads((SHIPPED / "evaluation.json").read_text())
    judge, dist = report["judge"], report["judge"]["distribution"]
    assert dist["samples_vs_phase"] <= 3.0
    assert judge["samples"]["accuracy"] >= 0.97
    assert min(judge["samples"]["per_label"].values()) >= 0.90
    assert judge["interpolation"]["monotonic_fraction"] >= 0.90
    for name in ("samples", "reconstructed"):
        assert dist[name]["fine_structure_vs_real"] >= 0.7, name
    sharpened = json.loads((SHIPPED / "sharpen.json").read_text())
    assert sharpened["base_epoch"] == 60 and report["epoch"] == sharpened["shipped_epoch"] > 60
    assert not (SHIPPED / "sharpen.pt").exists()  # the critic is not needed to play


def test_it_samples_from_its_learned_prior():
    """prior.npz ships with the weights: each digit's samples come from the mixture fitted to
    that digit's training codes, not from N(0, I)."""
    from vae.model.checkpoints import read_latents

    synth = Synthesiser.load(SHIPPED)
    assert synth.prior is not None and set(synth.prior.mixtures) >= set(range(10))
    latents = read_latents(SHIPPED)
    for digit in (3, 6):
        codes = synth.sample_codes(400, str(digit), seed=0).numpy()
        mine = latents["means"][latents["labels"] == digit]
        assert abs(codes.mean(0) - mine.mean(0)).max() < 0.25 * mine.std(0).max() + 0.05


@pytest.mark.slow
def test_originals_play_once_fsdd_is_preprocessed(fresh_clone, fsdd_recordings):
    from vae.audio.features import PRESETS
    from vae.data.dataset import preprocess

    config = json.loads((SHIPPED / "config.json").read_text())
    assert config["dataset"]["path"] == "data/fsdd"  # where the app looks, relative
    preprocess(fsdd_recordings, fresh_clone / "data" / "fsdd", PRESETS["fsdd"])
    at = open_page("explore", **{"studio-selected": ["3_theo_12"]})
    assert not at.exception and not at.error
    assert len(audio_urls(at)) == 2  # the original now plays beside the reconstruction
