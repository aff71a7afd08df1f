"""Issue 23, findings 8 and 9: every number on the command line is finite and inside a stated
range, or one line naming the flag, a non-zero exit and no file written; ``sample --n`` and
``interpolate --steps`` are capped and made a batch at a time."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vae.cli import main
from vae.cli import synthesis as cli_synthesis
from vae.synthesis.inference import Synthesiser

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "fsdd-digits"
CKPT = str(SHIPPED)
ZERO = ["0"] * 15  # the shipped code has 16 values: one more makes a code of the right size

# (flag named in the error, the command line); OUT is replaced by a path inside tmp_path.
REFUSED = [
    *(("--z", ["decode", CKPT, "--label", "3", "--out", "OUT/d.wav", "--z", ",".join(z)])
      for z in (ZERO + ["nan"], ZERO + ["inf"], ZERO + ["1e30"], ["1e300"] + ZERO,
                ZERO + ["-inf"], ["1", "x"])),
    ("--along", ["decode", CKPT, "--label", "3", "--out", "OUT/d.wav", "--along", "1=nan"]),
    ("--along", ["decode", CKPT, "--label", "3", "--out", "OUT/d.wav", "--along", "2=1e300"]),
    *(("--temperature", ["sample", CKPT, "--label", "3", "--out", "OUT", "--temperature", t])
      for t in ("nan", "inf", "1e30", "0")),
    *(("--n", ["sample", CKPT, "--label", "3", "--out", "OUT", "--n", n])
      for n in ("100000", "0", "1e3")),
    *(("--steps", ["interpolate", CKPT, "a.wav", "b.wav", "--out", "OUT", "--steps", n])
      for n in ("100000", "1", "nan")),
    *(("--clip-seconds", ["preprocess", "SRC", "--out", "OUT", "--clip-seconds", v])
      for v in ("inf", "nan", "1e300")),
    ("--trim-db", ["preprocess", "SRC", "--out", "OUT", "--trim-db", "nan"]),
    ("--top-db", ["preprocess", "SRC", "--out", "OUT", "--top-db", "inf"]),
    ("--sample-rate", ["preprocess", "SRC", "--out", "OUT", "--sample-rate", "1e9"]),
    ("--val-fraction", ["preprocess", "SRC", "--out", "OUT", "--val-fraction", "nan"]),
    *(("--seconds", ["vocoder", "DATA", "--out", "OUT", "--seconds", v])
      for v in ("inf", "nan", "-1")),
    ("--beta", ["train", "DATA", "--out", "OUT", "--beta", "nan"]),
    ("--lr", ["train", "DATA", "--out", "OUT", "--lr", "inf"]),
    ("--epochs", ["judge", "DATA", "--out", "OUT", "--epochs", "0"]),
    ("--per-class", ["demo-data", "OUT", "--per-class", "-5"]),
    ("--pairs", ["evaluate", CKPT, "DATA", "--pairs", "-1"]),
    ("--seed", ["sample", CKPT, "--label", "3", "--out", "OUT", "--seed", "-1"]),
]  # fmt: skip


def _run(argv: list[str]) -> int:
    """``python -m vae`` in this process: its exit status (argparse exits, handlers return)."""
    try:
        return main(argv)
    except SystemExit as done:
        return int(done.code)


@pytest.mark.parametrize(("flag", "argv"), REFUSED, ids=lambda v: v if isinstance(v, str) else
                         " ".join(v[:1] + v[-2:]))  # fmt: skip
def test_a_bad_number_is_one_line_naming_its_flag_and_writes_nothing(
    flag, argv, tmp_path, demo_set_dir, demo_dataset_dir, capsys
) -> None:
    out = tmp_path / "out"
    names = {"OUT": str(out), "OUT/d.wav": str(out / "d.wav"), "SRC": str(demo_set_dir),
             "DATA": str(demo_dataset_dir)}  # fmt: skip
    code = _run([names.get(a, a) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag}"), lines
    assert "Traceback" not in captured.err and not out.exists()


def _sizes(monkeypatch) -> list[int]:
    """The batch sizes Synthesiser.decode is called with (it still decodes them)."""
    sizes: list[int] = []
    decode = Synthesiser.decode

    def counted(self, z, labels=None):
        sizes.append(len(z))
        return decode(self, z, labels)

    monkeypatch.setattr(Synthesiser, "decode", counted)
    return sizes


def test_sample_makes_its_clips_a_batch_at_a_time(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli_synthesis, "BATCH", 8)
    sizes = _sizes(monkeypatch)
    out = tmp_path / "s"
    argv = ["sample", CKPT, "--label", "3", "--n", "20", "--seed", "4", "--out", str(out)]
    assert main(argv) == 0
    assert sizes == [8, 8, 4]  # never more than a batch held: memory flat in --n
    assert sorted(p.name for p in out.iterdir()) == [f"sample-3-{i:02d}.wav" for i in range(20)]
    # The same clips as one batch of 20 (the codes are drawn at once, before the batches).
    monkeypatch.setattr(cli_synthesis, "BATCH", 32)
    assert main([*argv[:-1], str(tmp_path / "whole")]) == 0
    for name in ("sample-3-00.wav", "sample-3-19.wav"):
        a, b = (sf.read(d / name)[0] for d in (out, tmp_path / "whole"))
        assert np.corrcoef(a, b)[0, 1] > 0.999
    capsys.readouterr()


def test_interpolate_streams_its_steps_and_morph(tmp_path, monkeypatch, write_tone, capsys) -> None:
    clips = [
        write_tone(tmp_path / f"{digit}_tone_{i}.wav", freq=freq)
        for i, (digit, freq) in enumerate([(3, 300.0), (5, 700.0), (7, 1500.0)])
    ]
    monkeypatch.setattr(cli_synthesis, "BATCH", 4)
    sizes = _sizes(monkeypatch)
    out = tmp_path / "morph"
    assert main(["interpolate", CKPT, *map(str, clips), "--steps", "6", "--out", str(out)]) == 0
    assert max(sizes[-4:]) <= 4 and sum(sizes[-4:]) == 11  # 2 legs of 6 meet on one clip
    assert sorted(p.name for p in out.glob("step*.wav")) == [f"step{i:02d}.wav" for i in range(11)]
    synth = Synthesiser.load(SHIPPED)
    ends = [synth.clip_from_file(path, path.name[0]) for path in clips]
    steps, whole = synth.morph_path(ends, 6)  # the morph made at once, as before
    morph, sr = sf.read(out / "morph.wav", dtype="float32")
    assert sr == synth.config.sample_rate and len(morph) == len(whole)
    assert np.corrcoef(morph, whole)[0, 1] > 0.999
    assert np.abs(morph).max() == pytest.approx(np.abs(whole).max(), abs=0.01)
    capsys.readouterr()
