"""Server time of one slider move on the Synthesise and Interpolate pages.

Run by hand: ``.venv/bin/python benchmarks/app_rerun.py [--moves 30]``.
Builds a workspace in a temp folder (the offline demo set preprocessed with a preset, and
the default "small" model trained one epoch on it), opens the real app in Streamlit's
AppTest, moves a slider ``--moves`` times and prints the median and 90th percentile of
each rerun, next to the parts of it: decode, Griffin-Lim, and the figure.
The figure of interest is the rerun: it is the whole script run a browser waits for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vae.audio.features import get_preset  # noqa: E402
from vae.data.dataset import preprocess  # noqa: E402
from vae.data.sources import make_demo_set  # noqa: E402
from vae.synthesis.inference import Synthesiser  # noqa: E402
from vae.training.train import train  # noqa: E402
from vae.training.train_config import TrainConfig  # noqa: E402

PRESETS = {  # 1 s clips: the brief's figure is for one second of audio
    "fsdd (8 kHz, 128 x 128)": get_preset("fsdd"),
    "seed at 1 s (22 kHz, 256 x 87)": get_preset("seed").replace(clip_samples=22050),
}


def workspace(root: Path, cfg) -> None:
    clips = make_demo_set(root / "clips", n_per_class=20, seed=0)
    preprocess(clips, root / "data" / "demo", cfg, val_fraction=0.2, seed=0)
    train(
        root / "data" / "demo",
        root / "checkpoints" / "demo",
        train_config=TrainConfig(epochs=1, device="cpu"),
    )


def timed(fn, n: int) -> list[float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def report(name: str, ms: list[float]) -> None:
    p90 = float(np.percentile(ms, 90))
    print(f"  {name:<34} median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moves", type=int, default=30, help="slider moves per page")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; the app runs torch with 1 thread (ui/cache.py)")
    for title, cfg in PRESETS.items():
        with tempfile.TemporaryDirectory() as tmp:
            workspace(Path(tmp), cfg)
            os.chdir(tmp)
            try:
                bench(title, cfg, args.moves)
            finally:
                os.chdir(ROOT)


def bench(title: str, cfg, moves: int) -> None:
    """Time the parts and the two slider reruns in the workspace in the working folder."""
    from streamlit.testing.v1 import AppTest

    from ui import figures

    print(f"{title}: clip {cfg.clip_samples / cfg.sample_rate:.2f} s")
    synth = Synthesiser.load("checkpoints/demo")
    torch.set_num_threads(1)
    z = torch.randn(1, synth.latent_dim)
    feats = synth.decode(z)
    report("decode", timed(lambda i: synth.decode(z), moves))
    report("Griffin-Lim", timed(lambda i: synth.to_audio(feats), moves))
    panel = [("x", feats[0].numpy())]
    report(
        "spectrogram figure to JSON",
        timed(lambda i: figures.spectrograms(panel, cfg).to_json(), moves),
    )
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/synthesise.py").run()
    values = np.linspace(-2.5, 2.5, moves)
    move = lambda i: at.slider(key="synth-dir-0").set_value(float(values[i])).run()  # noqa: E731
    report("Synthesise: slider move (rerun)", timed(move, moves))
    assert not at.exception, at.exception
    at.switch_page("app_pages/interpolate.py").run()
    alphas = np.linspace(0, 1, moves).round(2)
    drag = lambda i: at.slider(key="interp-alpha").set_value(float(alphas[i])).run()  # noqa: E731
    report("Interpolate: α move (rerun)", timed(drag, moves))
    assert not at.exception, at.exception


if __name__ == "__main__":
    main()
