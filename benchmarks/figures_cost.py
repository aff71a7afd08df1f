"""What a page pays per rerun for its plotly figures: building each figure and turning it
into the JSON ``st.plotly_chart`` sends (``return_figure_from_figure_or_data`` then
``plotly.io.to_json(validate=False)``, as Streamlit does), old code against new in one run.

Run: ``.venv/bin/python benchmarks/figures_cost.py [--repeats 30] [--baseline f53cfae]``.
The baseline is ``ui/figures.py`` as it was at ``--baseline`` (read with ``git show`` into a
temporary module), the new one is the working tree's. Figures: Interpolate's three
spectrograms, Synthesise's one, Explore's map of 3,000 clips in 10 groups with a route and
Interpolate's map with a path and a star, at the fsdd shape (128 x 128) and the seed shape
(256 x 87; the maps once). Prints the median ms of each, the ratio old / new, and whether both
sent the same JSON (floats to 1e-9).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import plotly.io as pio  # noqa: E402
from plotly.tools import return_figure_from_figure_or_data  # noqa: E402

from ui import figures as new  # noqa: E402
from vae.audio import features as F  # noqa: E402

SHAPES = {
    "fsdd 128 x 128": F.get_preset("fsdd"),
    "seed 256 x 87": F.get_preset("seed").replace(clip_samples=22050),
}


def baseline(ref: str):
    """``ui/figures.py`` at ``ref`` as a module of its own."""
    text = subprocess.run(
        ["git", "show", f"{ref}:ui/figures.py"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "figures_baseline.py"
    path.write_bytes(text)
    spec = importlib.util.spec_from_file_location("figures_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped(fig) -> str:
    """What ``st.plotly_chart`` does with a figure before it leaves the server."""
    return pio.to_json(return_figure_from_figure_or_data(fig, validate_figure=True), validate=False)


def same(a: str, b: str) -> bool:
    """Two figures' JSON alike, floats to 1e-9 (panel domains are summed in another order)."""

    def norm(value):
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return round(value, 9) if isinstance(value, float) else value

    return norm(json.loads(a)) == norm(json.loads(b))


def median_ms(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def cases(module, cfg, rng) -> dict:
    bins, frames = cfg.shape
    a, m, b = (rng.random((bins, frames), dtype=np.float32) for _ in range(3))
    three = [("A: 0_jackson_0", a), ("mix, α = 0.35", m), ("B: 1_theo_3", b)]
    n = 3000
    coords = rng.normal(size=(n, 2)).astype(np.float32)
    ids = [f"{i % 10}_speaker_{i}" for i in range(n)]
    groups = [str(i % 10) for i in range(n)]
    route = ids[:4]

    def explore():
        fig = module.latent_map(
            coords, ids, groups, "label", selected=ids[5:6],
            path=rng.normal(size=(4, 2)), route=route,
        )  # fmt: skip
        fig.update_layout(xaxis_title="PC1", yaxis_title="PC2")
        return fig

    def interpolate_map():
        fig = module.latent_map(
            coords, ids, groups, "label", extra=[("mix", rng.normal(size=2))],
            path=rng.normal(size=(9, 2)), height=420,
        )  # fmt: skip
        fig.update_layout(xaxis_title="PC1", yaxis_title="PC2")
        return fig

    return {
        "Interpolate spectrograms (3)": lambda: module.spectrograms(three, cfg),
        "Synthesise spectrogram (1)": lambda: module.spectrograms(three[1:2], cfg, height=360),
        "Explore reconstruction (2 + diff)": lambda: module.spectrograms(
            three[:2], cfg, difference=True
        ),
        "Explore map (3,000 points)": explore,
        "Interpolate map (3,000 points)": interpolate_map,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--baseline", default="f53cfae", help="git ref of the old figures")
    args = parser.parse_args()
    old = baseline(args.baseline)
    print(f"median ms over {args.repeats} builds, build + JSON as st.plotly_chart sends it")
    head = f"{'figure':<36} {'shape':<16} {'old':>8} {'new':>8} {'old/new':>8} {'same JSON':>9}"
    print(head)
    for shape, cfg in SHAPES.items():
        before = cases(old, cfg, np.random.default_rng(0))
        after = cases(new, cfg, np.random.default_rng(0))
        for name in before:
            if "map" in name and shape != next(iter(SHAPES)):
                continue  # the map does not depend on the features' shape
            alike = same(shipped(before[name]()), shipped(after[name]()))
            t_old = median_ms(lambda f=before[name]: shipped(f()), args.repeats)
            t_new = median_ms(lambda f=after[name]: shipped(f()), args.repeats)
            ratio = f"{t_old / t_new:7.1f}x"
            print(f"{name:<36} {shape:<16} {t_old:8.1f} {t_new:8.1f} {ratio} {alike!s:>9}")


if __name__ == "__main__":
    main()
