"""One description per option: every TrainConfig (and model) field is a ``train`` flag, a
JobOptions field and a widget on the Train page, with the help, range and default its field
gives; the config validates from the same description."""

from __future__ import annotations

import dataclasses
import re

import pytest

from vae.cli import build_parser
from vae.jobs.options import JobOptions, SharpenOptions
from vae.options import flag
from vae.training.model_options import MODEL_OPTIONS, ModelOptions
from vae.training.sharpen_config import SharpenConfig
from vae.training.train_config import OPTIONS, TrainConfig

TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
MODEL_FIELDS = [f.name for f in dataclasses.fields(ModelOptions)]


def test_every_field_is_a_train_flag_with_its_help(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in (*TRAIN_FIELDS, *MODEL_FIELDS):
        described = {**OPTIONS, **MODEL_OPTIONS}[name]
        assert re.search(rf"{flag(name)}\b", text), name
        assert " ".join(described.help.split()) in text, name


def test_the_flags_keep_their_names_and_mean_not_given_when_left_out() -> None:
    args = build_parser().parse_args(["train", "data", "--out", "ck"])
    assert all(getattr(args, name) is None for name in TRAIN_FIELDS)  # resume: the stored value
    given = build_parser().parse_args(
        ["train", "d", "--out", "o", "--batch-size", "8", "--beta-warmup-epochs", "2",
         "--free-bits", "0.5", "--weight-decay", "0.01", "--grad-clip", "5", "--log-every", "0",
         "--precision", "bf16", "--likelihood", "laplace", "--stop-when-stale"]
    )  # fmt: skip
    assert (given.batch_size, given.beta_warmup_epochs, given.free_bits) == (8, 2.0, 0.5)
    assert (given.weight_decay, given.grad_clip, given.log_every) == (0.01, 5.0, 0)
    assert (given.precision, given.likelihood, given.stop_when_stale) == ("bf16", "laplace", True)


def test_every_field_is_a_job_option_that_reaches_the_command_line() -> None:
    names = {f.name for f in dataclasses.fields(JobOptions)}
    assert set(TRAIN_FIELDS) | set(MODEL_FIELDS) == names
    defaults = TrainConfig()
    assert JobOptions().resolved().epochs == defaults.epochs  # None: training's default
    options = JobOptions(weight_decay=0.01, grad_clip=5.0, threads=2, stop_when_stale=True)
    args = build_parser().parse_args(["train", "d", "--out", "o", *options.arguments()])
    assert (args.weight_decay, args.grad_clip, args.threads, args.stop_when_stale) == (
        0.01, 5.0, 2, True,
    )  # fmt: skip


@pytest.mark.parametrize(
    "options,configs",
    [(JobOptions, (TrainConfig, ModelOptions)), (SharpenOptions, (SharpenConfig,))],
)
def test_the_written_out_job_options_are_the_configs_fields(options, configs) -> None:
    """JobOptions and SharpenOptions are plain dataclasses, written out; this holds them to
    the configs' fields, so an option added to a config and not to them fails here: the same
    names in the same order, each the config's type made optional with default None (not
    given), a switch a bool defaulting to False; keyword-only and frozen."""
    expected = []
    for config in configs:
        for field in dataclasses.fields(config):
            if field.default is False:
                expected.append((field.name, "bool", False))
            else:
                kinds = [k.strip() for k in field.type.split(" | ")]
                expected.append((field.name, " | ".join(dict.fromkeys([*kinds, "None"])), None))
    fields = dataclasses.fields(options)
    assert [(f.name, f.type, f.default) for f in fields] == expected
    assert all(f.kw_only for f in fields) and options.__dataclass_params__.frozen


@pytest.mark.parametrize(
    "change,message",
    [
        ({"epochs": 0}, "epochs=0 must be at least 1"),
        ({"lr": 0.0}, "lr=0.0 must be positive"),
        ({"grad_clip": -1.0}, "grad_clip=-1.0 must be 0 \\(off\\) or more"),
        ({"precision": "fp16"}, "precision='fp16': one of"),
        ({"likelihood": "cauchy"}, "likelihood='cauchy': one of"),
        ({"judge_patience": 0}, "judge_patience=0 must be 1 or more"),
        ({"device": "tpu"}, "device='tpu' must be auto, cpu, cuda or cuda:N"),
        ({"judge_every": 2}, "judge_every=2 needs a judge folder"),
    ],
)
def test_the_config_validates_from_the_same_description(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)
    TrainConfig(device="cuda:1")  # open choices: offered auto/cpu/cuda, other devices pass


def test_every_field_is_a_widget_on_the_train_page(studio_copy) -> None:
    pytest.importorskip("streamlit.testing.v1")
    from tests.apptest import open_page
    from ui.train_settings import KEYS, key_of

    at = open_page("train")
    assert not at.exception, at.exception
    drawn = {w.key for kind in ("number_input", "selectbox", "checkbox", "text_input")
             for w in at.get(kind)}  # fmt: skip
    for name in (*TRAIN_FIELDS, *MODEL_FIELDS):
        assert KEYS[name] == key_of(name) == "train-" + name.replace("_", "-")
        assert KEYS[name] in drawn, name
    defaults = TrainConfig()  # the page starts from the default recipe, else the defaults
    assert at.number_input(key="train-weight-decay").value == defaults.weight_decay
    assert at.selectbox(key="train-likelihood").value == defaults.likelihood
    assert at.checkbox(key="train-stop-when-stale").value is False


def test_feature_overrides_apply_one_way_for_the_cli_and_the_dataset_page() -> None:
    from vae.audio.features import PRESETS
    from vae.cli.data import _feature_config

    fsdd = PRESETS["fsdd"]
    cfg = fsdd.overridden(sample_rate=16000, clip_seconds=0.5, hop=32, trim_db=None)
    assert (cfg.sample_rate, cfg.clip_samples, cfg.hop_length, cfg.trim_db) == (
        16000,
        8000,
        32,
        None,
    )
    assert cfg.n_fft == fsdd.n_fft and fsdd.overridden() is fsdd  # left out: the preset's
    args = build_parser().parse_args(
        ["preprocess", "src", "--out", "o", "--sample-rate", "16000", "--clip-seconds", "0.5",
         "--hop", "32"]
    )  # fmt: skip
    assert _feature_config(args) == fsdd.overridden(sample_rate=16000, clip_seconds=0.5, hop=32)
    with pytest.raises(ValueError, match="unknown feature overrides \\['hop_length'\\]"):
        fsdd.overridden(hop_length=32)


# ------------------------------------------------------------------------------ feature settings


def test_every_feature_setting_is_a_preprocess_flag_with_its_range_and_help(capsys) -> None:
    """The preprocess flags are made from FeatureConfig's descriptions: one per setting,
    its help, its range (the flag refuses outside it) and each preset's value."""
    from vae.audio.features import PRESETS, SETTINGS
    from vae.cli import as_shown

    with pytest.raises(SystemExit):
        build_parser().parse_args(["preprocess", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    kept = ["sample_rate", "clip_seconds", "n_fft", "hop", "top_db", "n_mels", "trim_db"]
    assert [name for name in SETTINGS if name in kept] == kept  # a new setting adds a flag
    for name, described in SETTINGS.items():
        lo, hi = described.bounds()
        said = f"{flag(name)} {name.upper()} {described.help}, {as_shown(lo)} to {as_shown(hi)}"
        assert said in text, name
        value = PRESETS["fsdd"].setting(name)  # each preset's value, as written
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert f"(fsdd {shown}," in text, name
        for beyond in (lo - 1, hi * 2):
            with pytest.raises(SystemExit):
                build_parser().parse_args(
                    ["preprocess", "s", "--out", "o", flag(name), str(beyond)]
                )
    capsys.readouterr()


@pytest.mark.parametrize(
    "change,error,message",
    [
        ({"sample_rate": 999}, ValueError, "sample_rate=999 must be at least 1000 Hz"),
        ({"sample_rate": 192_001}, "limit", "sample_rate=192001: at most 192000 Hz"),
        ({"n_fft": 8}, ValueError, "n_fft=8 must be at least 16"),
        ({"hop_length": 0}, ValueError, "hop_length=0 must be in 1..n_fft"),
        ({"top_db": 0.0}, ValueError, "top_db=0.0 must be positive"),
        ({"top_db": 201.0}, "limit", "top_db=201.0: at most 200.0 dB"),
        ({"n_mels": -1}, ValueError, "n_mels=-1 must be 0 \\(linear\\) or a band count"),
        ({"n_mels": 1025}, "limit", "n_mels=1025: at most 1024"),
        ({"segment": "all"}, ValueError, "segment='all': one of \\('single', 'chunks'\\)"),
        ({"griffin_lim_iters": 0}, ValueError, "griffin_lim_iters=0 must be >= 1"),
        ({"griffin_lim_momentum": 1.0}, ValueError, "griffin_lim_momentum=1.0 must be in"),
    ],
)
def test_the_feature_config_checks_from_the_same_description(change, error, message) -> None:
    """FeatureConfig's own checks are its fields' descriptions: the lower bounds and choices
    (ValueError), the caps (vae.storage.limits' MAX_* constants, a LimitError)."""
    from vae.audio.features import PRESETS, FeatureConfig
    from vae.storage.limits import LimitError

    with pytest.raises(LimitError if error == "limit" else error, match=message):
        FeatureConfig.from_dict({**PRESETS["seed"].to_dict(), **change})


def test_a_field_added_later_changes_no_older_file() -> None:
    """``since_default``: a field added after a format was fixed is written only when it is
    not its default, so the files (and fingerprints) of configs made before keep their keys."""
    from vae.options import option, stored

    @dataclasses.dataclass(frozen=True)
    class Config:
        size: int = option(4, help="a size", label="Size", min=1)
        extra: int = option(0, help="added later", label="Extra", min=0, since_default=True)

    assert stored(Config()) == {"size": 4}
    assert stored(Config(extra=3)) == {"size": 4, "extra": 3}
    assert Config(**stored(Config(size=2))) == Config(size=2)
