"""The neural phase: a tiny vocoder trained on the demo set, stored in a checkpoint, used by
the Synthesiser when present, refused for other features; Griffin-Lim stays the fallback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.clirun import vae
from vae import features as F
from vae.dataset import load_dataset
from vae.inference import Synthesiser
from vae.vocoder import (
    VocoderConfig,
    VocoderNet,
    griffin_lim,
    load_vocoder,
    vocoder_dir,
)
from vae.vocoder_train import (
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


@pytest.mark.slow
def test_synthesiser_uses_the_vocoder_when_present(trained, studio_root):
    ckpt, _, ds = trained
    feats = _feats(ds, 2)
    synth = Synthesiser.load(ckpt)
    assert synth.phase_method == "vocoder"
    np.testing.assert_array_equal(synth.to_audio(feats), load_vocoder(ckpt).to_waveform(feats))
    gl = Synthesiser.load(ckpt, phase="griffin-lim")
    assert gl.phase_method == "griffin-lim" and gl.vocoder is None
    np.testing.assert_array_equal(
        gl.to_audio(feats), F.features_to_waveform(feats, ds.config).numpy()
    )
    plain = Synthesiser.load(studio_root / "checkpoints" / "demo")  # no vocoder/ folder
    assert plain.phase_method == "griffin-lim"
    with pytest.raises(ValueError, match="has no vocoder.*python -m vae vocoder"):
        Synthesiser.load(studio_root / "checkpoints" / "demo", phase="vocoder")
    with pytest.raises(ValueError, match="phase='neural'"):
        Synthesiser.load(ckpt, phase="neural")


def test_a_packed_checkpoint_carries_its_vocoder(trained, tmp_path):
    import zipfile

    from vae.checkpoints import pack_checkpoint

    ckpt, _, ds = trained
    (tmp_path / "c.zip").write_bytes(pack_checkpoint(ckpt))
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        assert {"demo/vocoder/vocoder.pt", "demo/vocoder/vocoder.json"} <= set(zf.namelist())
        zf.extractall(tmp_path / "unzipped")
    assert Synthesiser.load(tmp_path / "unzipped" / "demo").phase_method == "vocoder"


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


def test_a_broken_vocoder_names_the_file_and_the_fix(trained, tmp_path):
    ckpt, _, _ = trained
    shutil.copytree(vocoder_dir(ckpt), tmp_path / "v")
    (tmp_path / "v" / "vocoder.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="vocoder.pt: unreadable.*python -m vae vocoder"):
        load_vocoder(tmp_path / "v")
    with pytest.raises(ValueError, match="not a vocoder"):
        load_vocoder(tmp_path / "nothing")


@pytest.mark.slow
def test_cli_trains_a_vocoder_and_synthesis_commands_take_phase(studio_root, tmp_path):
    ckpt = tmp_path / "demo"
    shutil.copytree(studio_root / "checkpoints" / "demo", ckpt)
    data = studio_root / "data" / "demo"
    done = vae("vocoder", data, "--checkpoint", ckpt, "--seconds", 3, "--width", 16,
               "--layers", 1, "--val-clips", 4, "--threads", 1)  # fmt: skip
    assert "vocoder saved to" in done.stdout and "Griffin-Lim x32" in done.stdout
    assert "note: Griffin-Lim beats this vocoder" in done.stdout  # 3 s of training: it does
    assert (ckpt / "vocoder" / "vocoder.json").is_file()
    for phase in ("vocoder", "griffin-lim"):
        vae("sample", ckpt, "--n", 1, "--label", "tone", "--out", tmp_path / phase,
            "--phase", phase)  # fmt: skip
        assert (tmp_path / phase / "sample-tone-0.wav").is_file()
    refused = vae("sample", studio_root / "checkpoints" / "demo", "--n", 1, "--label", "tone",
                  "--out", tmp_path / "x", "--phase", "vocoder", check=False)  # fmt: skip
    assert refused.returncode == 1 and "has no vocoder" in refused.stderr


def test_evaluate_hears_the_model_through_the_vocoder_and_keeps_griffin_lim_as_baseline(
    trained, studio_root
):
    from vae.evaluate import evaluate_reconstruction

    ckpt, _, ds = trained
    with_vocoder = evaluate_reconstruction(Synthesiser.load(ckpt), ds, "val")
    plain = evaluate_reconstruction(Synthesiser.load(ckpt, phase="griffin-lim"), ds, "val")
    assert with_vocoder["phase"] == "vocoder" and plain["phase"] == "griffin-lim"
    assert plain["vocoder_only"] is None
    voc = with_vocoder["vocoder_only"]
    assert np.isfinite(voc["lsd_db"]["median"]) and voc["sc"]["median"] > 0
    # The baseline is Griffin-Lim in both reports; the model's figures follow the phase.
    assert with_vocoder["griffin_lim_only"] == plain["griffin_lim_only"]
    assert with_vocoder["model"]["lsd_db"] != plain["model"]["lsd_db"]
