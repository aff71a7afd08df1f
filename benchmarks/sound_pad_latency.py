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


# A drag at the display's rate, driven inside the frame: one move per animation frame (60 a
# second), as a hand gives. (Playwright's own mouse moves cost ~40 ms each here, so driven
# from Python a "drag" would be a slow walk.) Slider drags set the range input's value and
# send its input event, as the browser does; pad drags send pointer events to the canvas.
DRAG_JS = """async ([selector, seconds, pad]) => {
  const el = document.querySelector(selector);
  const box = el.getBoundingClientRect();
  const inputs = [], sounds = [];
  const root = document.getElementById('root');
  const watch = new MutationObserver(() => sounds.push(Number(root.dataset.renderedAt)));
  watch.observe(root, { attributes: true, attributeFilter: ['data-rendered-at'] });
  const at = (f) => {
    const sweep = Math.abs(((f * 2) % 2) - 1);  // there and back
    return [box.left + 8 + (box.width - 16) * (pad ? f : 1 - sweep),
            box.top + 8 + (box.height - 16) * (pad ? sweep : 0.5)];
  };
  const fire = (type, f) => {
    const [x, y] = at(f);
    const e = new PointerEvent(type, { clientX: x, clientY: y, pointerId: 1, bubbles: true,
                                       buttons: type === 'pointerup' ? 0 : 1 });
    inputs.push(performance.timeOrigin + e.timeStamp);
    if (pad || type !== 'pointermove') { el.dispatchEvent(e); return; }
    const lo = Number(el.min), hi = Number(el.max);
    el.value = String(lo + (hi - lo) * (1 - Math.abs(((f * 2) % 2) - 1)));
    el.dispatchEvent(new Event('input', { bubbles: true }));
  };
  fire('pointerdown', 0);
  const t0 = performance.now();
  await new Promise((done) => {
    const step = () => {
      const f = (performance.now() - t0) / (seconds * 1000);
      if (f >= 1) return done();
      fire('pointermove', f);
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
  const elapsed = (performance.now() - t0) / 1000;
  const during = sounds.slice();
  fire('pointerup', 1);
  watch.disconnect();
  return { inputs, sounds: during, elapsed };
}"""


def drag(page, selector: str, seconds: float, pad: bool = False) -> tuple[float, list]:
    """Drag across the element for ``seconds`` at one move per animation frame; returns new
    sounds per second and ms from each move to the next new sound."""
    page.locator(PAD_FRAME).scroll_into_view_if_needed()
    # Start once the page is still: the key presses before end in the server's redraw,
    # which shares the browser's main thread (a drag during it makes half the sounds).
    page.wait_for_timeout(800)
    settle(page)
    seen = pad_js(page, DRAG_JS, [selector, seconds, pad])
    sounds = seen["sounds"]
    lag = []
    for t_in in seen["inputs"][1:]:
        later = [s for s in sounds if s >= t_in]
        if later:
            lag.append(later[0] - t_in)
    page.wait_for_timeout(1000)  # the full-quality sound and the server's rerun
    settle(page)
    return len(sounds) / seen["elapsed"], lag


def server_latencies(page, slider_key: str, presses: int) -> list[float]:
    """The pad off: ms from a key press on Streamlit's slider to new audio in the player."""
    thumb = page.locator(f"{key(slider_key)} input[type='range']")
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

            go(page, "Interpolate")
            pad_frame(page)
            alpha_keys = key_latencies(page, "#axis-0", args.presses, ("ArrowLeft", "ArrowRight"))
            alpha_rate, alpha_drag = drag(page, "#axis-0", args.drag_seconds)

            go(page, "Explore")
            pad_frame(page)
            pad_rate, pad_drag = drag(page, "#pad", args.drag_seconds, pad=True)

            go(page, "Synthesise")
            page.locator(f"{key('pad-toggle')} label").click()
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
