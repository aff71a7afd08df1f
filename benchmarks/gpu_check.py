"""The steps of ``benchmarks/gpu_check.sh``: what a GPU machine must show before anyone trusts
it, each compared with the CPU path, in one report; exit 1 on any mismatch.

1. DDP: ``torchrun --nproc-per-node <GPUs>`` (NCCL) trains a small model; its weights must
   equal a one-process CPU run's within WEIGHT_ATOL.
2. bf16: one GPU with ``--precision bf16``; its final validation loss within BF16_BAND of
   the fp32 run's.
3. The reproduce script (``scripts/reproduce_fsdd_digits.py``) on a GPU, shortened (few
   epochs): it must finish and write its evaluation.
4. Synthesis latency: decode + Griffin-Lim of 1 s (the fsdd preset) on the GPU; the decoded
   features must equal the CPU's within DECODE_ATOL.

``--dry-run`` runs the same steps on the CPU (gloo, two processes, tiny settings; fp32 stands in
for bf16) in under a minute: CI runs it. Without a GPU and without ``--dry-run``: exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vae.audio import features as F  # noqa: E402
from vae.model import checkpoints as ck  # noqa: E402
from vae.model.conv_vae import ConvVAE, ModelConfig, inert_parameters  # noqa: E402

MODEL = "--batch-size 8 --channels 8,16 --latent-dim 4 --beta-warmup-epochs 1 --seed 0".split()
# Tolerances. On the CPU two gloo ranks differ from one process by summation order only
# (1.7e-7 measured, as in tests/integration/test_distributed.py). On a GPU, with TF32 turned
# off (NO_TF32) so that fp32 is compared with fp32, other kernels and summation orders remain;
# its bound is looser, and a real bug (a rank training on the wrong share, a lost gradient
# average) moves weights by far more than either.
NO_TF32 = {"NVIDIA_TF32_OVERRIDE": "0"}  # cuBLAS and cuDNN: no TF32 whatever torch asks
WEIGHT_ATOL = {"cpu": 1e-5, "cuda": 1e-2}
DECODE_ATOL = {"cpu": 1e-5, "cuda": 1e-2}
FSDD = ROOT.parent / "shared/datasets/fsdd/recordings"
BF16_BAND = 0.05  # bf16's final val loss within 5 % of fp32's


def _run(cmd: list[object], env: dict[str, str]) -> float:
    """Run ``cmd`` from the project root; seconds taken. A failure ends the check (exit 1)."""
    started = time.perf_counter()
    done = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        print(done.stdout[-2000:] + done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"FAIL: `{' '.join(map(str, cmd[1:]))}` exited {done.returncode}")
    return time.perf_counter() - started


def _weight_diff(a: Path, b: Path) -> float:
    ma, mb = ck.load_checkpoint(a).model, ck.load_checkpoint(b).model
    wa, wb = ma.state_dict(), mb.state_dict()
    inert = inert_parameters(ma)
    return max(float((wa[k].cpu() - wb[k].cpu()).abs().max()) for k in wa if k not in inert)


def _val_loss(out: Path) -> float:
    return [r for r in ck.read_metrics(out) if r["event"] == "epoch"][-1]["val_loss"]


def _dataset(tmp: Path, per_class: int) -> Path:
    """The synthetic demo set, preprocessed small (128 bins x 33 frames)."""
    from vae.data.dataset import preprocess
    from vae.data.sources import make_demo_set

    src = make_demo_set(tmp / "demo-src", n_per_class=per_class, seed=0)
    cfg = F.FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)
    preprocess(src, tmp / "demo", cfg, val_fraction=0.2, seed=0)
    return tmp / "demo"


def check_ddp(data: Path, tmp: Path, dev: str, nproc: int, epochs: int, env: dict) -> bool:
    def train(device: str, out: Path) -> list[object]:
        return ["-m", "vae", "train", data, "--out", out, "--epochs", epochs, "--device", device,
                "--threads", 1, *MODEL]  # fmt: skip

    run = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    seconds = _run([*run, f"--nproc-per-node={nproc}", *train(dev, tmp / "ddp")], env | NO_TF32)
    _run([sys.executable, *train("cpu", tmp / "one")], env)
    diff, atol = _weight_diff(tmp / "ddp", tmp / "one"), WEIGHT_ATOL[dev]
    backend = "nccl" if dev == "cuda" else "gloo"
    ok = diff < atol
    print(f"ddp: {nproc} processes ({backend}), {epochs} epochs in {seconds:.1f} s; largest weight "
          f"difference from one CPU process {diff:.2e} (tolerance {atol:g}): "
          f"{'ok' if ok else 'MISMATCH'}")  # fmt: skip
    return ok


def check_bf16(data: Path, tmp: Path, dev: str, epochs: int, env: dict) -> bool:
    base = [sys.executable, "-m", "vae", "train", data, "--epochs", epochs, "--device", dev]
    base += [*MODEL, "--threads", 1]
    precision = "bf16" if dev == "cuda" else "fp32"  # the CPU refuses bf16: fp32 stands in
    seconds = _run([*base, "--out", tmp / "bf16", "--precision", precision], env)
    _run([*base, "--out", tmp / "fp32", "--precision", "fp32"], env)
    low, full = _val_loss(tmp / "bf16"), _val_loss(tmp / "fp32")
    change = (low - full) / full
    ok = abs(change) <= BF16_BAND
    label = "bf16" if dev == "cuda" else "bf16 (dry: fp32 on the CPU)"
    print(f"{label}: val loss {low:.3f} vs fp32 {full:.3f} ({change:+.2%}, band "
          f"{BF16_BAND:.0%}) in {seconds:.1f} s: {'ok' if ok else 'MISMATCH'}")  # fmt: skip
    return ok


def check_reproduce(src: Path, tmp: Path, dev: str, dry: bool, env: dict) -> bool:
    out = tmp / "reproduced"
    cmd = [sys.executable, ROOT / "scripts" / "reproduce_fsdd_digits.py", "--src", src]
    cmd += ["--out", out, "--data", tmp / "reproduce-data"]
    if dry:  # the settings tests/integration/test_reproduce.py uses
        cmd += ["--preprocess-args=--sample-rate 8000 --clip-seconds 0.504 --n-fft 128 --hop 64"]
        cmd += ["--train-args=--conditional --epochs 2 --channels 8,16 --latent-dim 4 "
                "--batch-size 8 --device cpu", "--judge-epochs", 2]  # fmt: skip
        cmd += ["--sharpen-args=--epochs 1 --batch-size 8 --device cpu"]
        cmd += ["--samples-per-label", 2, "--pairs", 2]
    else:  # the shipped settings, shortened to 3 epochs and 1 stage epoch
        from vae.jobs.recipes import SHIPPED

        cmd += [f"--train-args={SHIPPED.arguments()} --epochs 3 --device {dev}"]
        cmd += [f"--sharpen-args=--epochs 1 --device {dev}"]
        cmd += ["--judge-epochs", 2, "--samples-per-label", 20, "--pairs", 10]
    seconds = _run(cmd, env)
    report = json.loads((out / "evaluation.json").read_text())
    ok = report.get("epoch") == (2 if dry else 3) + 1  # + the one stage epoch of sharpening
    print(f"reproduce: the chain (preprocess, judge, train, sharpen, evaluate) in "
          f"{seconds:.1f} s on {dev}, checkpoint at epoch {report.get('epoch')}: "
          f"{'ok' if ok else 'MISMATCH'}")  # fmt: skip
    return ok


@torch.no_grad()
def check_synthesis(dev: str, repeats: int) -> bool:
    cfg = F.get_preset("fsdd")
    torch.backends.cudnn.allow_tf32 = False  # fp32 against the CPU's fp32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model = ConvVAE(ModelConfig(*cfg.shape)).eval()
    z = torch.randn(1, model.config.latent_dim)
    on_cpu = model.decode(z)
    model_dev = model.to(dev)

    def once() -> torch.Tensor:
        feats = model_dev.decode(z.to(dev))
        F.features_to_waveform(feats.cpu(), cfg)
        return feats

    once()  # warm: kernels, caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        once()
        if dev == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    diff, atol = float((once().cpu() - on_cpu).abs().max()), DECODE_ATOL[dev]
    ok = diff < atol
    print(f"synthesis: 1 s clip (fsdd preset), decode on {dev} + Griffin-Lim, median "
          f"{statistics.median(times):.1f} ms of {repeats}; decode vs CPU {diff:.2e} "
          f"(tolerance {atol:g}): {'ok' if ok else 'MISMATCH'}")  # fmt: skip
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU")
    parser.add_argument(
        "--fsdd",
        type=Path,
        default=FSDD,
        help="FSDD recordings for the reproduce step (else the demo set)",
    )
    args = parser.parse_args()
    gpus = torch.cuda.device_count()
    if not args.dry_run and gpus == 0:
        print("gpu_check: no GPU visible (torch.cuda.device_count() == 0); "
              "run with --dry-run for the CPU rehearsal", file=sys.stderr)  # fmt: skip
        return 2
    dev, dry = ("cpu", True) if args.dry_run else ("cuda", False)
    nproc = 2 if dry else gpus
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    where = "dry run: CPU, gloo" if dry else f"{gpus} x {torch.cuda.get_device_name(0)}, NCCL"
    print(f"gpu_check: {where}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        data = _dataset(tmp, 6 if dry else 40)
        results = [
            check_ddp(data, tmp, dev, nproc, 2 if dry else 3, env),
            check_bf16(data, tmp, dev, 2 if dry else 3, env),
            check_reproduce(
                args.fsdd if args.fsdd.is_dir() and not dry else tmp / "demo-src",
                tmp,
                dev,
                dry,
                env,
            ),  # fmt: skip
            check_synthesis(dev, 5 if dry else 50),
        ]
    failed = results.count(False)
    print(f"gpu_check: {'all ok' if not failed else f'{failed} MISMATCH'}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
