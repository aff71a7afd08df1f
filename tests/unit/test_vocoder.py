"""The neural phase: a tiny vocoder trained on the demo set, stored in a checkpoint with its
verdict against Griffin-Lim, used by the Synthesiser's "auto" only where it won, refused for
other features; Griffin-Lim stays the fallback."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.clirun import vae
from vae.audio import features as F
from vae.data.dataset import load_dataset
from vae.synthesis.inference import Synthesiser
from vae.vocoder.network import (
    VocoderConfig,
    VocoderNet,
    griffin_lim,
    load_vocoder,
    verdict,
    vocoder_dir,
)
from vae.vocoder.training import (
    VocoderTraining,
    multi_resolution_loss,
    train_vocoder,
)

TINY = {"width": 32, "layers": 2}
# Steps, not seconds, end it (the time budget is only a guard against a stuck machine).
TRAINING = VocoderTraining(seconds=600, max_steps=100, batch_size=8, lr=5e-3, val_clips=6)


@pytest.fixture(scope="module")
def trained(studio_root, tmp_path_factory):
    """(checkpoint copy holding a vocoder trained 100 steps, its report, the dataset)."""
    ckpt = tmp_path_factory.mktemp("vocoder") / "demo"
    shutil.copytree(studio_root / "checkpoints" / "demo", ckpt)
    ds = load_dataset(studio_root / "data" / "demo")
    config = VocoderConfig(ds.config, **TINY)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny work: a second thread only waits on a busy machine
    try:
        report = train_vocoder(ds, vocoder_dir(ckpt), config, TRAINING)
    finally:
        torch.set_num_threads(threads)
    return ckpt, report, ds


def _feats(ds, n: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.asarray(ds.features[:n], dtype=np.float32))


def _judged(ckpt, out, won: bool | None):
    """A copy of the checkpoint ``ckpt`` at ``out`` whose vocoder.json says it won (True),
    lost (False), or carries no verdict (None, as vocoders trained before verdicts)."""
    shutil.copytree(ckpt, out)
    file = vocoder_dir(out) / "vocoder.json"
    info = json.loads(file.read_text())
    info.pop("verdict", None)
    if won is not None:
        # Figures that agree with the verdict: the vocoder's medians lower where it won.
        gl, voc = (3.0, 0.1), ((2.5, 0.08) if won else (3.5, 0.2))
        info["verdict"] = {
            "won": won,
            "measured": True,
            "clips": 6,
            "lsd_db": {"vocoder": voc[0], "griffin_lim": gl[0]},
            "sc": {"vocoder": voc[1], "griffin_lim": gl[1]},
        }
    file.write_text(json.dumps(info))
    return out


@pytest.mark.slow
def test_training_writes_a_folder_that_reloads_equal(trained):
    ckpt, report, ds = trained
    folder = vocoder_dir(ckpt)
    assert sorted(p.name for p in folder.iterdir()) == ["vocoder.json", "vocoder.pt"]
    info = json.loads((folder / "vocoder.json").read_text())
    assert info["format_version"] == 1
    assert info["feature_config"] == ds.config.to_dict()
    assert info["steps"] == report["steps"] == 100 and info["seconds"] > 0
    val = info["val"]
    for name in ("griffin_lim", "vocoder", "hybrid_8"):
        assert np.isfinite(val[name]["lsd_db"]["median"]) and val[name]["sc"]["median"] > 0
    # The verdict: the val figures' medians, and whether the vocoder's are lower on both.
    judged = info["verdict"]
    assert judged == report["verdict"] == verdict(val) and judged["clips"] == val["clips"]
    for key in ("lsd_db", "sc"):
        for name in ("vocoder", "griffin_lim"):
            assert judged[key][name] == val[name][key]["median"]
    lower = [judged[k]["vocoder"] < judged[k]["griffin_lim"] for k in ("lsd_db", "sc")]
    assert judged["won"] is all(lower)
    vocoder = load_vocoder(ckpt)  # the checkpoint folder finds its vocoder/ inside
    again = load_vocoder(folder, ds.config)
    mine, theirs = vocoder.net.state_dict(), again.net.state_dict()
    assert mine.keys() == theirs.keys()
    for key in mine:
        torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=0)
    waves = vocoder.to_waveform(_feats(ds))
    assert waves.shape == (4, ds.config.clip_samples) and torch.isfinite(waves).all()
    torch.testing.assert_close(waves, again.to_waveform(_feats(ds)), rtol=0, atol=0)


def test_batched_equals_one_by_one_and_any_leading_shape(trained):
    ckpt, _, ds = trained
    vocoder, feats = load_vocoder(ckpt), _feats(ds, 3)
    batched = vocoder.to_waveform(feats)
    for i in range(3):
        torch.testing.assert_close(vocoder.to_waveform(feats[i]), batched[i], atol=3e-4, rtol=0)
    assert vocoder.to_waveform(feats.reshape(1, 3, *feats.shape[1:])).shape == (1, *batched.shape)
    hybrid = vocoder.to_waveform(feats, refine_iters=4)
    assert hybrid.shape == batched.shape and torch.isfinite(hybrid).all()


def test_training_lowers_the_multi_resolution_loss(trained):
    ckpt, _, ds = trained
    rows = ds.split_indices("train")[:8]
    feats = torch.from_numpy(np.asarray(ds.features[rows], dtype=np.float32))
    waves = torch.from_numpy(np.asarray(ds.waveforms[rows], dtype=np.float32))
    torch.manual_seed(TRAINING.seed)  # the initialisation training started from
    untrained = VocoderNet(VocoderConfig(ds.config, **TINY)).eval()
    with torch.no_grad():
        before = float(multi_resolution_loss(untrained(feats), waves, ds.config))
        after = float(multi_resolution_loss(load_vocoder(ckpt).net(feats), waves, ds.config))
    assert after < 0.97 * before, (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["direct", "integrated"])
@pytest.mark.parametrize("magnitude", ["input", "predicted"])
def test_every_config_keeps_the_shape_and_trains_through_unrolled_griffin_lim(
    trained, tmp_path, phase, magnitude
):
    _, _, ds = trained
    config = VocoderConfig(ds.config, width=8, layers=1, phase=phase, magnitude=magnitude)
    steps = VocoderTraining(seconds=600, max_steps=2, batch_size=2, unroll=2, val_clips=0)
    report = train_vocoder(ds, tmp_path / "v", config, steps)
    assert report["steps"] == 2 and "val" not in report
    assert report["verdict"] == {"won": False, "measured": False}  # unmeasured: not heard
    vocoder = load_vocoder(tmp_path / "v", ds.config)
    assert vocoder.config == config
    for iters in (0, 2):
        waves = vocoder.to_waveform(_feats(ds, 2), iters)
        assert waves.shape == (2, ds.config.clip_samples) and torch.isfinite(waves).all()


def test_configs_name_the_bad_value(trained):
    _, _, ds = trained
    for bad, match in (
        ({"kernel": 4}, "kernel=4 must be odd"),
        ({"magnitude": "guessed"}, "magnitude='guessed'"),
        ({"phase": "random"}, "phase='random'"),
    ):
        with pytest.raises(ValueError, match=match):
            VocoderConfig(ds.config, **bad)
    with pytest.raises(ValueError, match="augment=2"):
        VocoderTraining(augment=2)


def test_a_hostile_vocoder_folder_is_refused_naming_the_file(trained, tmp_path):
    ckpt, _, ds = trained
    folder = shutil.copytree(vocoder_dir(ckpt), tmp_path / "vocoder")
    state = torch.load(folder / "vocoder.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("inf")
    torch.save(state, folder / "vocoder.pt")
    with pytest.raises(ValueError, match=f"vocoder.pt: tensor '{name}' holds NaN or inf"):
        load_vocoder(folder)
    with pytest.raises(ValueError, match="width=100000: at most"):
        VocoderConfig(ds.config, width=100_000)


def test_griffin_lim_from_zero_phase_is_torchaudios(trained):
    _, _, ds = trained
    mag = F.features_to_magnitude(_feats(ds, 2), ds.config)
    ours = griffin_lim(mag, ds.config, 8)
    torch.testing.assert_close(ours, F.magnitude_to_waveform(mag, ds.config, 8), atol=1e-5, rtol=0)


def test_a_verdict_is_won_only_below_griffin_lim_on_both_figures():
    def val(lsd: float, sc: float) -> dict:
        return {
            "clips": 10,
            "griffin_lim": {"lsd_db": {"median": 3.0}, "sc": {"median": 0.1}},
            "vocoder": {"lsd_db": {"median": lsd}, "sc": {"median": sc}},
        }

    assert verdict(val(2.9, 0.09))["won"] is True
    for lsd, sc in ((3.1, 0.09), (2.9, 0.11), (3.0, 0.1)):  # worse on one, or a tie: lost
        assert verdict(val(lsd, sc))["won"] is False
    assert verdict(val(2.9, 0.09))["lsd_db"] == {"vocoder": 2.9, "griffin_lim": 3.0}
    assert verdict(None) == {"won": False, "measured": False}


def test_phase_auto_never_picks_a_vocoder_that_lost(trained, tmp_path):
    """auto: a vocoder whose verdict says it won plays; one that lost, or an old one with
    no verdict, leaves Griffin-Lim, and says why; --phase vocoder still forces it."""
    ckpt, _, ds = trained
    feats = _feats(ds, 2)
    gl = F.features_to_waveform(feats, ds.config).numpy()
    voc = load_vocoder(ckpt).to_waveform(feats).numpy()
    won = Synthesiser.load(_judged(ckpt, tmp_path / "won", True))
    assert won.phase_method == "vocoder" and won.vocoder is not None
    assert won.phase_reason.startswith("the vocoder: the vocoder beat Griffin-Lim")
    np.testing.assert_array_equal(won.to_audio(feats), voc)
    for name, verdict_, why in (
        ("lost", False, "the vocoder lost to Griffin-Lim on the validation copies "
         "(LSD 3.50 vs 3.00 dB, SC 0.200 vs 0.100)"),
        ("old", None, "the vocoder has no verdict against Griffin-Lim"),
    ):  # fmt: skip
        auto = Synthesiser.load(_judged(ckpt, tmp_path / name, verdict_))
        assert auto.phase_method == "griffin-lim" and auto.vocoder is None, name
        assert auto.phase_reason.startswith(f"Griffin-Lim: {why}"), auto.phase_reason
        np.testing.assert_array_equal(auto.to_audio(feats), gl)
        forced = Synthesiser.load(tmp_path / name, phase="vocoder")
        assert forced.phase_method == "vocoder" and "as asked" in forced.phase_reason
        np.testing.assert_array_equal(forced.to_audio(feats), voc)


def test_auto_follows_a_verdict_rewritten_under_it(trained, tmp_path):
    """The Synthesiser reads vocoder.json again when it changes (the app keeps one cached
    while the vocoder command runs): a new verdict changes the phase at once."""
    ckpt, _, _ = trained
    synth = Synthesiser.load(_judged(ckpt, tmp_path / "c", True))
    assert synth.phase_method == "vocoder"
    file = vocoder_dir(tmp_path / "c") / "vocoder.json"
    info = json.loads(file.read_text())
    info["verdict"]["won"] = False
    file.write_text(json.dumps(info))
    stamp = file.stat().st_mtime + 1
    os.utime(file, (stamp, stamp))  # a coarse clock could leave the same mtime
    assert synth.phase_method == "griffin-lim" and "lost to" in synth.phase_reason


@pytest.mark.slow
def test_synthesiser_uses_the_vocoder_when_present(trained, studio_root, tmp_path):
    ckpt, _, ds = trained
    ckpt = _judged(ckpt, tmp_path / "won", True)
    feats = _feats(ds, 2)
    synth = Synthesiser.load(ckpt)
    assert synth.phase_method == "vocoder"
    np.testing.assert_array_equal(synth.to_audio(feats), load_vocoder(ckpt).to_waveform(feats))
    gl = Synthesiser.load(ckpt, phase="griffin-lim")
    assert gl.phase_method == "griffin-lim" and gl.vocoder is None
    assert gl.phase_reason == "Griffin-Lim, as asked (--phase griffin-lim)"
    np.testing.assert_array_equal(
        gl.to_audio(feats), F.features_to_waveform(feats, ds.config).numpy()
    )
    plain = Synthesiser.load(studio_root / "checkpoints" / "demo")  # no vocoder/ folder
    assert plain.phase_method == "griffin-lim"
    assert plain.phase_reason == "Griffin-Lim: the checkpoint has no vocoder"
    with pytest.raises(ValueError, match="has no vocoder.*python -m vae vocoder"):
        Synthesiser.load(studio_root / "checkpoints" / "demo", phase="vocoder")
    with pytest.raises(ValueError, match="phase='neural'"):
        Synthesiser.load(ckpt, phase="neural")


def test_a_packed_checkpoint_carries_its_vocoder(trained, tmp_path):
    import zipfile

    from vae.model.checkpoints import pack_checkpoint

    ckpt, _, ds = trained
    (tmp_path / "c.zip").write_bytes(pack_checkpoint(ckpt))
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        assert {"demo/vocoder/vocoder.pt", "demo/vocoder/vocoder.json"} <= set(zf.namelist())
        zf.extractall(tmp_path / "unzipped")
    unzipped = Synthesiser.load(tmp_path / "unzipped" / "demo", phase="vocoder")
    assert unzipped.vocoder.info["verdict"] == load_vocoder(ckpt).info["verdict"]


def test_a_vocoder_for_other_features_is_refused(trained, tmp_path):
    ckpt, _, ds = trained
    other = ds.config.replace(top_db=60.0)
    with pytest.raises(ValueError, match=r"trained for features.*top_db 80.0 vs 60.0"):
        load_vocoder(ckpt, other)
    # A checkpoint of other features holding this vocoder: refused, or Griffin-Lim on auto.
    moved = tmp_path / "moved"
    shutil.copytree(ckpt, moved)
    config = json.loads((moved / "config.json").read_text())
    config["feature_config"]["top_db"] = 60.0
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trained for features"):
        Synthesiser.load(moved, phase="vocoder")
    auto = Synthesiser.load(moved)
    assert auto.phase_method == "griffin-lim" and "top_db" in auto.vocoder_error
    assert auto.phase_reason.startswith("Griffin-Lim: the checkpoint's vocoder is unusable")


def test_a_broken_vocoder_names_the_file_and_the_fix(trained, tmp_path):
    ckpt, _, _ = trained
    shutil.copytree(vocoder_dir(ckpt), tmp_path / "v")
    (tmp_path / "v" / "vocoder.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="vocoder.pt: truncated or corrupt.*python -m vae vocoder"):
        load_vocoder(tmp_path / "v")
    with pytest.raises(ValueError, match="not a vocoder"):
        load_vocoder(tmp_path / "nothing")


def test_the_cli_note_says_what_auto_does_with_the_vocoder():
    from vae.cli.evaluation import _verdict_note

    figures = {
        "measured": True,
        "clips": 6,
        "lsd_db": {"vocoder": 2.5, "griffin_lim": 3.0},
        "sc": {"vocoder": 0.08, "griffin_lim": 0.1},
    }
    assert _verdict_note({"verdict": {"won": True, **figures}}) == (
        "the vocoder beat Griffin-Lim on the validation copies (LSD 2.50 vs 3.00 dB, SC "
        "0.080 vs 0.100); --phase auto uses it"
    )
    keeps = "; --phase auto keeps Griffin-Lim (--phase vocoder forces the vocoder)"
    assert _verdict_note({"verdict": {"won": False, **figures}}) == (
        "the vocoder lost to Griffin-Lim on the validation copies (LSD 2.50 vs 3.00 dB, SC "
        "0.080 vs 0.100)" + keeps
    )
    for unjudged in ({"verdict": {"won": False, "measured": False}}, {}):
        note = _verdict_note(unjudged)
        assert note.startswith("the vocoder has no verdict") and note.endswith(keeps)


@pytest.mark.slow
def test_cli_trains_a_vocoder_and_synthesis_commands_take_phase(studio_root, tmp_path):
    ckpt = tmp_path / "demo"
    shutil.copytree(studio_root / "checkpoints" / "demo", ckpt)
    data = studio_root / "data" / "demo"
    done = vae("vocoder", data, "--checkpoint", ckpt, "--seconds", 3, "--width", 16,
               "--layers", 1, "--val-clips", 4, "--threads", 1)  # fmt: skip
    assert "vocoder saved to" in done.stdout and "Griffin-Lim x32" in done.stdout
    # 3 s of training: Griffin-Lim beats it, and the last line says what auto does then.
    judged = json.loads((ckpt / "vocoder" / "vocoder.json").read_text())["verdict"]
    assert judged["won"] is False
    lsd = judged["lsd_db"]
    note = done.stdout.strip().splitlines()[-1]
    assert note.startswith(
        "note: the vocoder lost to Griffin-Lim on the validation copies "
        f"(LSD {lsd['vocoder']:.2f} vs {lsd['griffin_lim']:.2f} dB, SC "
    ), note
    assert note.endswith("; --phase auto keeps Griffin-Lim (--phase vocoder forces the vocoder)")
    waves = {}
    for phase in ("auto", "vocoder", "griffin-lim"):
        vae("sample", ckpt, "--n", 1, "--label", "tone", "--out", tmp_path / phase,
            "--phase", phase, "--seed", 1)  # fmt: skip
        waves[phase], _ = sf.read(tmp_path / phase / "sample-tone-0.wav", dtype="float32")
    np.testing.assert_array_equal(waves["auto"], waves["griffin-lim"])  # it lost
    assert not np.array_equal(waves["vocoder"], waves["griffin-lim"])
    refused = vae("sample", studio_root / "checkpoints" / "demo", "--n", 1, "--label", "tone",
                  "--out", tmp_path / "x", "--phase", "vocoder", check=False)  # fmt: skip
    assert refused.returncode == 1 and "has no vocoder" in refused.stderr


def test_evaluate_hears_the_model_through_the_vocoder_and_keeps_griffin_lim_as_baseline(
    trained, studio_root
):
    from vae.evaluation.evaluate import evaluate_reconstruction

    ckpt, _, ds = trained
    with_vocoder = evaluate_reconstruction(Synthesiser.load(ckpt, phase="vocoder"), ds, "val")
    plain = evaluate_reconstruction(Synthesiser.load(ckpt, phase="griffin-lim"), ds, "val")
    assert with_vocoder["phase"] == "vocoder" and plain["phase"] == "griffin-lim"
    assert plain["vocoder_only"] is None
    voc = with_vocoder["vocoder_only"]
    assert np.isfinite(voc["lsd_db"]["median"]) and voc["sc"]["median"] > 0
    # The baseline is Griffin-Lim in both reports; the model's figures follow the phase.
    assert with_vocoder["griffin_lim_only"] == plain["griffin_lim_only"]
    assert with_vocoder["model"]["lsd_db"] != plain["model"]["lsd_db"]
