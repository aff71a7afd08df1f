"""The decoder study: train variants of the shipped model with the same seed and the same
epoch budget on FSDD, and print each one's reconstruction figures through audio.

    .venv/bin/python scripts/decoder_study.py --epochs 10 --jobs 2 [--only NAME ...]

Each variant is ``python -m vae train`` with its own options (one thread each, ``--jobs``
at a time), then ``evaluate_reconstruction`` on the validation split. Results go to
``--out``/study.json as they come, so a long study can be read (and resumed) part way.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = "--conditional --latent-dim 16 --beta-warmup-epochs 5 --seed 0"
# name -> train options on top of BASE; the first is the shipped model's recipe.
VARIANTS: dict[str, str] = {
    "shipped (transpose, beta 3)": "--beta 3",
    "beta 0.3": "--beta 0.3",
    "upsample+res1, latent 64, beta 0.05": "--beta 0.05 --latent-dim 64 --decoder upsample "
    "--res-blocks 1",
    "latent 64, beta 0.05": "--beta 0.05 --latent-dim 64",
    "upsample+res1, beta 0.3": "--beta 0.3 --decoder upsample --res-blocks 1",
    "beta 0.05": "--beta 0.05",
    "laplace, beta 1": "--beta 1 --likelihood laplace",
}


def run_variant(name: str, options: str, data: Path, out: Path, epochs: int) -> dict:
    ckpt = out / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    cmd = [sys.executable, "-m", "vae", "train", str(data), "--out", str(ckpt)]
    cmd += [*shlex.split(BASE), *shlex.split(options), "--epochs", str(epochs), "--threads", "1"]
    if (ckpt / "model.pt").exists():
        cmd.append("--resume")
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        return {"name": name, "error": done.stderr.strip().splitlines()[-1:]}
    import torch

    from vae.data.dataset import load_dataset
    from vae.evaluation.evaluate import evaluate_reconstruction
    from vae.synthesis.inference import Synthesiser

    torch.set_num_threads(1)
    report = evaluate_reconstruction(Synthesiser.load(ckpt), load_dataset(data), "val")
    return {
        "name": name,
        "options": options,
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "lsd_db": report["model"]["lsd_db"]["median"],
        "sc": report["model"]["sc"]["median"],
        "feature_mse": report["model"]["feature_mse"],
        "checkpoint": str(ckpt),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "fsdd")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "decoder-study")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = parser.parse_args()
    if not (args.data / "features.npy").is_file():
        raise SystemExit(f"{args.data}: preprocess FSDD there first (python -m vae preprocess)")
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "study.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    todo = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}

    def one(item: tuple[str, str]) -> None:
        result = run_variant(*item, args.data, args.out, args.epochs)
        results[item[0]] = result
        results_file.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(result), flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo.items()))
    print(f"\n| variant | LSD dB | SC | feature MSE | train s ({args.epochs} epochs) |")
    print("|---|---|---|---|---|")
    for name in todo:
        r = results.get(name, {})
        if "lsd_db" in r:
            print(
                f"| {name} | {r['lsd_db']:.2f} | {r['sc']:.3f} | {r['feature_mse']:.4f} "
                f"| {r['train_seconds']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
