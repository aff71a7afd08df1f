"""How fast sound follows the hand, in headless chromium on the shipped checkpoint.

For each control: the time from an input event (the browser's own timestamp of the key
press or pointer move) to the new sound being ready (the pad's ``data-rendered-at``), and
during a continuous drag, new sounds per second. The baseline in the same run is the server
path (the pad switched off): from a key press on Streamlit's slider to the page's audio
player getting new audio.

    .venv/bin/python benchmarks/sound_pad_latency.py [--presses 30] [--drag-seconds 3]

Prints medians and p90s in ms and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import (  # noqa: E402
    BROWSER_ARGS,
    CHROMIUM,
    PAD_FRAME,
    WATCH_JS,
    go,
    key,
    pad_frame,
    pad_js,
    serve_app,
    settle,
    with_shipped_checkpoint,
)

SOUNDS_JS = "() => ({inputs: window.__inputs.slice(), sounds: window.__sounds.slice()})"


def _p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(round(0.9 * len(xs))) - 1)]


def _wait_sound(page, n: int) -> None:
    page.wait_for_function(
        "([sel, n]) => document.querySelector(sel).contentWindow.__sounds.length >= n",
        arg=[PAD_FRAME, n],
        timeout=10_000,
    )


def key_latencies(page, selector: str, presses: int, keys: tuple[str, str]) -> list[float]:
    """ms from each key press to the next new sound, presses ~200 ms apart (a person
    tapping an arrow key)."""
    pad_js(page, WATCH_JS)
    frame = page.frame_locator(PAD_FRAME)
    frame.locator(selector).focus()
    out = []
    for i in range(presses):
        before = pad_js(page, SOUNDS_JS)
        frame.locator(selector).press(keys[(i // 10) % 2])  # ten one way, ten back
        _wait_sound(page, len(before["sounds"]) + 1)
        seen = pad_js(page, SOUNDS_JS)
        pressed = seen["inputs"][len(before["inputs"])]
        out.append(seen["sounds"][len(before["sounds"])] - pressed)
        page.wait_for_timeout(200)
    return out


def drag(page, selector: str, seconds: float, vertical: bool = False) -> tuple[float, list]:
    """Drag across the element for ``seconds`` at 60 pointer moves a second; returns new
    sounds per second and ms from each move to the next new sound."""
    pad_js(page, WATCH_JS)
    box = page.frame_locator(PAD_FRAME).locator(selector).bounding_box()
    frame_box = page.locator(PAD_FRAME).bounding_box()
    assert box is not None and frame_box is not None
    x0, y0 = box["x"] + 8, box["y"] + box["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    start = time.monotonic()
    n = int(seconds * 60)
    for i in range(n):
        f = i / n
        sweep = abs(((f * 2) % 2) - 1)  # there and back
        if vertical:
            x = box["x"] + 8 + (box["width"] - 16) * f
            y = box["y"] + 8 + (box["height"] - 16) * sweep
        else:
            x, y = box["x"] + 8 + (box["width"] - 16) * (1 - sweep), y0
        page.mouse.move(x, y)
        page.wait_for_timeout(1000 / 60)
    elapsed = time.monotonic() - start
    seen = pad_js(page, SOUNDS_JS)
    page.mouse.up()
    sounds = seen["sounds"]
    lag = []
    for t_in in seen["inputs"]:
        later = [s for s in sounds if s >= t_in]
        if later:
            lag.append(later[0] - t_in)
    return len(sounds) / elapsed, lag


def server_latencies(page, slider_key: str, presses: int) -> list[float]:
    """The pad off: ms from a key press on Streamlit's slider to new audio in the player."""
    thumb = page.locator(f"{key(slider_key)} [role='slider']")
    out = []
    for i in range(presses):
        src = page.locator("[data-testid='stAudio'] audio, audio").first.get_attribute("src")
        thumb.focus()
        t0 = time.time() * 1000
        thumb.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
        page.wait_for_function(
            "src => { const a = document.querySelector(\"[data-testid='stAudio'] audio, audio\");"
            " return a && a.getAttribute('src') !== src }",
            arg=src,
            timeout=30_000,
        )
        out.append(time.time() * 1000 - t0)
        settle(page)
    return out


def line(name: str, xs: list[float], baseline: float | None = None) -> None:
    median = statistics.median(xs)
    ratio = f"  ({baseline / median:.1f}x faster than the server path)" if baseline else ""
    print(f"{name:<44} median {median:6.1f} ms  p90 {_p90(xs):6.1f} ms  n={len(xs)}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--drag-seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        with_shipped_checkpoint(workspace)
        with serve_app(workspace, "streamlit-bench.log") as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            page.set_default_timeout(90_000)
            page.goto(url)
            settle(page)

            go(page, "Synthesise")
            pad_frame(page)
            synth_keys = key_latencies(page, "#axis-0", args.presses, ("ArrowRight", "ArrowLeft"))
            synth_rate, synth_drag = drag(page, "#axis-1", args.drag_seconds)
            page.wait_for_timeout(1000)
            settle(page)

            go(page, "Interpolate")
            pad_frame(page)
            alpha_keys = key_latencies(page, "#axis-0", args.presses, ("ArrowLeft", "ArrowRight"))
            alpha_rate, alpha_drag = drag(page, "#axis-0", args.drag_seconds)
            page.wait_for_timeout(1000)
            settle(page)

            go(page, "Explore")
            pad_frame(page)
            pad_rate, pad_drag = drag(page, "#pad", args.drag_seconds, vertical=True)
            page.wait_for_timeout(1000)
            settle(page)

            go(page, "Synthesise")
            page.locator(f"{key('sound-pad-toggle')} label").click()
            settle(page)
            baseline = server_latencies(page, "synth-dir-0", max(10, args.presses // 3))
            browser.close()

    base = statistics.median(baseline)
    print(f"sound pad latency, shipped checkpoint, headless chromium, {args.presses} presses")
    line("Synthesise: key press -> new sound", synth_keys, base)
    line("Synthesise: pointer move -> new sound (drag)", synth_drag, base)
    print(f"{'Synthesise: new sounds per second (drag)':<44} {synth_rate:6.1f}")
    line("Interpolate α: key press -> new sound", alpha_keys, base)
    line("Interpolate α: pointer move -> new sound", alpha_drag, base)
    print(f"{'Interpolate α: new sounds per second (drag)':<44} {alpha_rate:6.1f}")
    line("Explore pad: pointer move -> new sound", pad_drag, base)
    print(f"{'Explore pad: new sounds per second (drag)':<44} {pad_rate:6.1f}")
    line("server path (pad off): key press -> new audio", baseline)


if __name__ == "__main__":
    main()
