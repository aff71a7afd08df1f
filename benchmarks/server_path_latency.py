"""The server path's redraws, in headless chromium on the shipped checkpoint, sound pad off.

Issue 26's acceptance line 1: a key press on Synthesise's first slider -> new audio in the
page, a key press on Interpolate's α slider -> new mix audio, and a click on a point of
Explore's map -> that clip's reconstruction shown (its heading, spectrogram and audio in the
page). Times are the page's own: from the browser's timestamp of the key press (or mouse
press) to the mutation that shows the result, so Playwright's round trips are not counted.

Where the time goes, per move: press -> the rerun request leaving the browser (the widget's
own delay), the request -> the server's "script finished" message (the server's run, on
localhost), the CPU time the server's process spent on the move (the figure to compare
on a busy machine: it does not grow with others' load as wall time does) and the bytes
the server sent for the move.

    .venv/bin/python benchmarks/server_path_latency.py [--presses 20] [--clicks 20]

Prints median and p90 in ms for each of the three, then the breakdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from tests.browser import (  # noqa: E402
    BROWSER_ARGS,
    CHROMIUM,
    go,
    key,
    serve_app,
    settle,
    with_shipped_checkpoint,
)

# Before the app's own script: every websocket message in and out with its time and size
# (small incoming ones kept whole, to tell "script finished" apart), every key and mouse
# press with the browser's timestamp, and ``__watch(cond)``: the time a DOM mutation first
# makes ``cond()`` true (and the next animation frame, which is when it is painted).
INIT_JS = """(() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__ws = []; window.__presses = [];
  const Native = window.WebSocket;
  function Watched(url, protocols) {
    const ws = new Native(url, protocols);
    ws.addEventListener('message', (e) => {
      const d = e.data, size = d.byteLength ?? d.size ?? d.length;
      const bytes = d instanceof ArrayBuffer && size < 4096 ? Array.from(new Uint8Array(d)) : null;
      window.__ws.push({ t: now(), dir: 'in', size, bytes });
    });
    const send = ws.send.bind(ws);
    ws.send = (d) => { window.__ws.push({ t: now(), dir: 'out', size: d.byteLength ?? d.length,
                                          bytes: null }); return send(d); };
    return ws;
  }
  Watched.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Watched[k] = Native[k];
  window.WebSocket = Watched;
  for (const type of ['keydown', 'mousedown'])
    document.addEventListener(type, (e) => window.__presses.push(performance.timeOrigin
      + e.timeStamp), { capture: true });
  window.__watch = (cond) => {
    window.__seen = null; window.__painted = null;
    const check = () => {
      if (window.__seen !== null || !cond()) return;
      window.__seen = now(); obs.disconnect();
      requestAnimationFrame(() => { window.__painted = now(); });
    };
    const obs = new MutationObserver(check);
    obs.observe(document.body, { subtree: true, childList: true, attributes: true,
                                 characterData: true });
  };
})();"""

AUDIO_SRCS = "() => [...document.querySelectorAll('audio')].map(a => a.getAttribute('src'))"
# Some audio in the page that was not there before the press.
NEW_AUDIO = """(before) => () => [...document.querySelectorAll('audio')]
  .some(a => a.getAttribute('src') && !before.includes(a.getAttribute('src')))"""


@dataclass
class Move:
    """One move: ms from the press to the result shown, and where the time went."""

    shown_ms: float
    to_request_ms: float  # press -> the rerun request leaves the browser
    queue_ms: float  # the request -> the run's start ("new session" message)
    run_ms: float  # the run's start -> the server's "script finished"
    received_kb: float  # what the server sent for it
    server_cpu_ms: float  # CPU the server's process spent on it (all its threads)
    browser_cpu_ms: float  # CPU of the page's main thread (chromium's ThreadTime)
    browser_script_ms: float  # of it, running the page's JavaScript (ScriptDuration)


NAN = float("nan")


def server_pid() -> int:
    """The pid of the ``streamlit run`` this process started (``serve_app``)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"streamlit" in cmdline:
            return int(stat.parent.name)
    raise RuntimeError("no streamlit server started by this process")


def cpu_ms(pid: int) -> float:
    """CPU time so far of ``pid`` in ms, user and system, threads that ended included (each
    script run is a thread of its own): a move's share is measured whatever else the
    machine runs (/proc's ticks: 10 ms steps, so read medians over many moves)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(round(0.9 * len(xs))) - 1)]


def _kind(message: dict) -> str:
    if message["bytes"] is None:
        return "delta"
    return ForwardMsg.FromString(bytes(message["bytes"])).WhichOneof("type") or "?"


def _browser_metrics(page) -> dict[str, float]:
    """Chromium's own running totals for the page (seconds), through the DevTools protocol."""
    got = page.cdp.send("Performance.getMetrics")["metrics"]
    return {m["name"]: m["value"] for m in got if m["name"] in ("ThreadTime", "ScriptDuration")}


def _move(page, cond_js: str, arg, act, timeout_ms: int = 30_000) -> Move:
    """Arm the watch for ``cond_js`` (a JS function of ``arg`` returning the condition),
    run ``act()`` (the press), wait until it holds and the run is over."""
    mark = page.evaluate("() => [window.__ws.length, window.__presses.length]")
    page.evaluate(f"(arg) => window.__watch(({cond_js})(arg))", arg)
    cpu, browser = cpu_ms(page.server_pid), _browser_metrics(page)
    act()
    page.wait_for_function("() => window.__painted !== null", timeout=timeout_ms)
    settle(page)
    cpu = cpu_ms(page.server_pid) - cpu
    browser = {k: v - browser[k] for k, v in _browser_metrics(page).items()}
    seen = page.evaluate(
        "([w, p]) => ({ws: window.__ws.slice(w), presses: window.__presses.slice(p),"
        " painted: window.__painted})",
        mark,
    )
    pressed = seen["presses"][0]
    sent = next(m["t"] for m in seen["ws"] if m["dir"] == "out" and m["t"] >= pressed)
    kinds = [(m["t"], _kind(m)) for m in seen["ws"] if m["dir"] == "in" and m["t"] >= sent]
    started = next((t for t, kind in kinds if kind == "new_session"), NAN)
    done = next((t for t, kind in kinds if kind == "script_finished"), NAN)
    received = sum(m["size"] for m in seen["ws"] if m["dir"] == "in")
    return Move(
        shown_ms=seen["painted"] - pressed,
        to_request_ms=sent - pressed,
        queue_ms=started - sent,
        run_ms=done - started,
        received_kb=received / 1024,
        server_cpu_ms=cpu,
        browser_cpu_ms=browser["ThreadTime"] * 1000,
        browser_script_ms=browser["ScriptDuration"] * 1000,
    )


def slider_moves(page, slider_key: str, presses: int, start: str | None = None) -> list[Move]:
    """Key presses on Streamlit's slider ``slider_key``, all to the right (each a place not
    heard before, so no cached sound is measured), each until new audio is in the page and
    the run is over; ``start`` (a key, e.g. "Home") is pressed first, not measured."""
    thumb = page.locator(f"{key(slider_key)} input[type='range']")
    if start:
        thumb.focus()
        thumb.press(start)
        page.wait_for_timeout(500)
        settle(page)
    out = []
    for _ in range(presses):
        thumb.focus()
        before = page.evaluate(AUDIO_SRCS)
        out.append(_move(page, NEW_AUDIO, before, lambda: thumb.press("ArrowRight")))
        page.wait_for_timeout(200)
    return out


# The clicked clip's heading ("<id> — <label>") differs from the one before, and its
# spectrogram (a chart keyed explore-spec-<id>) is drawn and an audio player is there.
SHOWN = """(before) => () => {
  const h = [...document.querySelectorAll('h3')].find(h => h.innerText.includes('—'));
  if (!h || h.innerText === before) return false;
  const id = h.innerText.split(' — ')[0].trim();
  const cls = '.st-key-explore-spec-' + id.replace(/[^A-Za-z0-9_-]/g, '-');
  const spec = document.querySelector(cls + ' .main-svg');
  return spec !== null && document.querySelectorAll('audio[src]').length > 0;
}"""
HEADING = """() => { const h = [...document.querySelectorAll('h3')]
  .find(h => h.innerText.includes('—')); return h ? h.innerText : ''; }"""


def map_clicks(page, clicks: int) -> list[Move]:
    """Clicks on points of Explore's map, a different point each time, each until that
    clip's reconstruction is shown and the run is over."""
    points = f"{key('explore-map')} .scatterlayer .point"
    page.wait_for_selector(points)
    count = page.locator(points).count()
    out, n = [], 0
    while len(out) < clicks and n < clicks * 3:
        box = page.locator(points).nth((n * 97 + 5) % count).bounding_box()
        n += 1
        if box is None:
            continue
        before = page.evaluate(HEADING)
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        try:
            click = lambda x=x, y=y: page.mouse.click(x, y)  # noqa: E731
            out.append(_move(page, SHOWN, before, click, 15_000))
        except PlaywrightError:  # a point under another, or the same clip: another one
            settle(page)
        page.wait_for_timeout(200)
    return out


def line(name: str, xs: list[float], unit: str = "ms") -> None:
    print(f"  {name:<52} median {statistics.median(xs):7.1f} {unit}  p90 {_p90(xs):7.1f} {unit}")


def report(name: str, moves: list[Move], goal_ms: float) -> None:
    shown = [m.shown_ms for m in moves]
    median = statistics.median(shown)
    verdict = "meets" if median <= goal_ms else "misses"
    print(
        f"{name:<54} median {median:7.1f} ms  p90 {_p90(shown):7.1f} ms  n={len(moves)}"
        f"  ({verdict} <= {goal_ms:.0f} ms)"
    )


def breakdown(name: str, moves: list[Move]) -> None:
    print(f"{name}: where the time goes")
    line("press -> rerun request sent (widget's delay)", [m.to_request_ms for m in moves])
    for what, xs in (
        ("request -> run starts on the server", [m.queue_ms for m in moves]),
        ("run: start -> script finished (server time)", [m.run_ms for m in moves]),
    ):
        xs = [x for x in xs if x == x]  # a move whose message was not seen is left out
        if xs:
            line(what, xs)
    line("server CPU per move (all threads)", [m.server_cpu_ms for m in moves])
    line("browser CPU per move (page's main thread)", [m.browser_cpu_ms for m in moves])
    line("  of it running JavaScript", [m.browser_script_ms for m in moves])
    line("press -> shown (all)", [m.shown_ms for m in moves])
    line("bytes from the server", [m.received_kb for m in moves], "kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument(
        "--pages", default="synthesise,interpolate,explore", help="which of the three to measure"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        with_shipped_checkpoint(workspace)
        with (
            serve_app(workspace, "streamlit-server-path.log", VAE_SOUND_PAD="0") as url,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            page.add_init_script(INIT_JS)
            page.server_pid = server_pid()
            page.cdp = page.context.new_cdp_session(page)
            page.cdp.send("Performance.enable")
            page.set_default_timeout(90_000)
            page.goto(url)
            settle(page)
            runs = {}
            if "synthesise" in args.pages:
                go(page, "Synthesise")
                runs["Synthesise"] = slider_moves(page, "synth-dir-0", args.presses)
            if "interpolate" in args.pages:
                go(page, "Interpolate")
                page.wait_for_selector("text=mix, α = 0.50")
                alpha = slider_moves(page, "interp-alpha", args.presses, start="Home")
                runs["Interpolate"] = alpha
            if "explore" in args.pages:
                go(page, "Explore")
                runs["Explore"] = map_clicks(page, args.clicks)
            browser.close()

    print("server path (sound pad off), shipped checkpoint, headless chromium, one session")
    goals = {
        "Synthesise": ("Synthesise: key press -> new audio", 200),
        "Interpolate": ("Interpolate α: key press -> new audio", 200),
        "Explore": ("Explore: map click -> reconstruction shown", 500),
    }
    for name, moves in runs.items():
        report(goals[name][0], moves, goals[name][1])
    for name, moves in runs.items():
        breakdown(name, moves)


if __name__ == "__main__":
    main()
