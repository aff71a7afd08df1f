"""The people of ``app_load.py``, acting at a person's pace on the app, each its own session:
most speak Streamlit's protocol (``app_load_socket_people``: the server's path, no renderer
to feed), and one is a chromium context (below: what a person sees, drawing included). Each
times every action from the input to its answer and notes exceptions and any pick or value
of another session's that shows up in its own."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass, field

from tests.browser import BROWSER_ARGS, CHROMIUM, IDLE, PAD_FRAME, WATCH_JS, key

ACTIONS = ("synthesise", "interpolate", "explore", "morph")
PAGE_OF = {"synthesise": "Synthesise", "interpolate": "Interpolate", "explore": "Explore",
           "morph": "Interpolate"}  # fmt: skip
ACTION_TIMEOUT_MS = 60_000  # an answer slower than this is a failure, not a figure
AUDIO_SRCS = "() => [...document.querySelectorAll('audio')].map(a => a.getAttribute('src'))"
# The map's points with the clip id each stands for (plotly binds its calcdata point, with
# the index ``i`` into its trace, to the element) and their centres, keeping only points no
# other point is within 8 px of, so a click picks the point it aims at.
MAP_POINTS_JS = """(sel) => {
  const all = [...document.querySelectorAll(sel + ' .scatterlayer .trace .point')].map(el => {
    const r = el.getBoundingClientRect(), trace = el.closest('.trace').__data__[0].trace;
    const id = trace.customdata ? trace.customdata[el.__data__.i] : null;
    return { x: r.x + r.width / 2, y: r.y + r.height / 2, id: Array.isArray(id) ? id[0] : id };
  }).filter(p => p.id !== null && !String(p.id).startsWith('yours'));
  return all.filter(p => all.every(q => q === p || Math.hypot(p.x - q.x, p.y - q.y) > 8));
}"""
PICKED_JS = """() => [...document.querySelectorAll('h3')].map(h => h.innerText)
  .filter(t => t.includes('—')).map(t => t.split(' — ')[0].trim())[0] || null"""


# ------------------------------------------------------------------------------ a person


@dataclass
class Person:
    """One browser context: its own session. ``times`` (ms) by action."""

    index: int
    pad: bool
    times: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in ACTIONS})
    runs: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in ACTIONS})
    errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    where: str = ""
    nudges: dict[str, int] = field(default_factory=dict)  # arrow presses, by slider
    picks: int = 0
    done_at: list[float] = field(default_factory=list)  # time.monotonic() after each action
    stride: int = 7  # session i aims at map points i, i + stride...: never another's
    mode: str = "lerp"
    kind: str = "socket"  # or "chromium"


async def _settle(page) -> None:
    """Until the script run is over (its state, not only the running indicator, which
    shows late on a busy server: a key press then lands on a page still being drawn)."""
    await page.wait_for_timeout(200)
    await page.wait_for_function(IDLE, timeout=ACTION_TIMEOUT_MS)


async def _go(page, person: Person, title: str) -> None:
    if person.where == title:
        return
    await page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    await page.wait_for_selector(f"h1:has-text('{title}')")
    await _settle(page)
    person.where = title
    if person.pad and title in ("Synthesise", "Interpolate"):
        await page.frame_locator(PAD_FRAME).locator("#root[data-state='ready']").wait_for()
        await _frame(page).evaluate(WATCH_JS)


def _frame(page):
    return next(f for f in page.frames if "sound_pad" in (f.url or ""))


async def _press(page, person: Person, slider_key: str) -> float:
    """One arrow press on the page's slider (ten one way, ten back); ms to the new sound."""
    done = person.nudges.get(slider_key, 0)
    arrow = "ArrowRight" if (done // 10) % 2 == 0 else "ArrowLeft"
    person.nudges[slider_key] = done + 1
    if person.pad:
        frame = _frame(page)
        before = await frame.evaluate("() => [window.__inputs.length, window.__sounds.length]")
        await page.frame_locator(PAD_FRAME).locator("#axis-0").press(arrow)
        await frame.wait_for_function(
            f"() => window.__sounds.length > {before[1]}", timeout=ACTION_TIMEOUT_MS
        )
        seen = await frame.evaluate("() => [window.__inputs, window.__sounds]")
        return seen[1][before[1]] - seen[0][before[0]]
    srcs = await page.evaluate(AUDIO_SRCS)
    thumb = page.locator(f"{key(slider_key)} input[type='range']")
    await thumb.focus()
    t0 = time.perf_counter()
    await thumb.press(arrow)
    await page.wait_for_function(
        f"before => JSON.stringify(({AUDIO_SRCS})()) !== JSON.stringify(before)",
        arg=srcs,
        timeout=ACTION_TIMEOUT_MS,
    )
    return (time.perf_counter() - t0) * 1000


async def _pick(page, person: Person) -> float:
    """Click a map point no other session aims at; ms to its heading. A heading naming
    another clip than the one clicked is a leak (or a miss: both are reported)."""
    sel = key("explore-map")
    await page.wait_for_selector(f"{sel} .scatterlayer .point")
    points = await page.evaluate(MAP_POINTS_JS, sel)
    if not points:
        raise RuntimeError("no map point stands alone to click")
    before = await page.evaluate(PICKED_JS)
    choices = [p for p in points[person.index :: person.stride] if p["id"] != before] or points
    point = choices[person.picks % len(choices)]
    person.picks += 1
    t0 = time.perf_counter()
    await page.mouse.click(point["x"], point["y"])
    await page.wait_for_function(
        f"before => ({PICKED_JS})() !== before", arg=before, timeout=ACTION_TIMEOUT_MS
    )
    took = (time.perf_counter() - t0) * 1000
    await _settle(page)
    shown = await page.evaluate(PICKED_JS)
    if shown != str(point["id"]):
        person.leaks.append(f"session {person.index} picked {point['id']!r}, shown {shown!r}")
    return took


async def _morph(page, person: Person) -> float:
    """Switch lerp/slerp (so the last morph no longer stands), then Make the morph; ms to
    its download button."""
    person.mode = "slerp" if person.mode == "lerp" else "lerp"
    await page.locator(f"{key('interp-mode')} label").get_by_text(person.mode, exact=True).click()
    await page.wait_for_selector(key("interp-download"), state="detached")
    await _settle(page)
    t0 = time.perf_counter()
    await page.locator(f"{key('interp-morph')} button").click()
    await page.wait_for_selector(key("interp-download"), timeout=ACTION_TIMEOUT_MS)
    return (time.perf_counter() - t0) * 1000


async def _check_slider(page, person: Person, slider_key: str, step: float) -> None:
    """The slider shows this session's own value (another session's moves must not)."""
    if person.pad:
        return
    net = sum(1 if (i // 10) % 2 == 0 else -1 for i in range(person.nudges[slider_key]))
    shown = await page.locator(f"{key(slider_key)} [data-testid='stSliderThumbValue']").inner_text()
    start = 0.5 if slider_key == "interp-alpha" else 0.0
    if abs(float(shown) - (start + net * step)) > 1e-6:
        person.leaks.append(f"session {person.index}: {slider_key} shows {shown}, moved to "
                            f"{start + net * step:.2f}")  # fmt: skip


async def act(page, person: Person, action: str) -> float:
    """One action on its page (reached first, untimed); ms from input to answer."""
    await _go(page, person, PAGE_OF[action])
    if action == "synthesise":
        took = await _press(page, person, "synth-dir-0")
        await _settle(page)
        await _check_slider(page, person, "synth-dir-0", 0.05)
    elif action == "interpolate":
        took = await _press(page, person, "interp-alpha")
        await _settle(page)
        await _check_slider(page, person, "interp-alpha", 0.05)
    elif action == "explore":
        took = await _pick(page, person)
    else:
        took = await _morph(page, person)
    return took


def plan(moves: int, block: int) -> list[str]:
    """The actions in turn, ``block`` of each at a time (a person stays on a page a while)."""
    return [ACTIONS[(m // block) % len(ACTIONS)] for m in range(moves)]


def own_order(actions: list[str], index: int, people: int) -> list[str]:
    """``actions`` started at person ``index``'s share of the way round: people act on their
    own, so at any moment they are spread over the pages rather than all making a morph in
    the same second (each person still does every action of the plan once)."""
    start = index * len(actions) // max(1, people)
    return actions[start:] + actions[:start]


async def socket_session(url: str, person: Person, actions: list[str], pace: float,
                         on_move=None):  # fmt: skip
    """One protocol person: opens the app, does ``actions`` at ``pace``, closes;
    ``on_move(person)`` after each."""
    from benchmarks.app_load_protocol import ProtocolSession
    from benchmarks.app_load_socket_people import SocketPerson

    async with ProtocolSession(url, timeout=ACTION_TIMEOUT_MS / 1000) as session:
        await session.open()
        actor = SocketPerson(session, person)
        for action in actions:
            began = time.perf_counter()
            try:
                person.times[action].append(await actor.act(action))
                person.runs[action].append(actor.last_run_ms)
            except Exception as err:  # a timeout or a missing answer: noted, go on
                person.errors.append(f"{action}: {type(err).__name__}: {str(err)[:160]}")
                actor.where = ""
            person.done_at.append(time.monotonic())
            if on_move is not None:
                on_move(person)
            await asyncio.sleep(max(0.0, pace - (time.perf_counter() - began)))


async def _chromium_until(browser, url, person, actions, pace, stop: asyncio.Event):
    """The chromium person: ``actions`` in turn, repeated, until ``stop`` (the protocol
    people are done), or once through when nobody else is in the phase."""
    context = await browser.new_context(viewport={"width": 1500, "height": 1300})
    try:
        page = await context.new_page()
        page.set_default_timeout(ACTION_TIMEOUT_MS)
        page.on("pageerror", lambda err: person.errors.append(f"page error: {err}"))
        await page.goto(url)
        await page.wait_for_selector("h1:has-text('Sound VAE Studio')")
        await _settle(page)
        turn = 0
        while turn < len(actions) or not stop.is_set():
            action = actions[turn % len(actions)]
            turn += 1
            began = time.perf_counter()
            try:
                person.times[action].append(await act(page, person, action))
            except Exception as err:  # a timeout or a vanished element: noted, go on
                person.errors.append(f"{action}: {type(err).__name__}: {str(err)[:160]}")
                person.where = ""  # start the next action from a fresh page visit
            person.done_at.append(time.monotonic())
            boxes = await page.locator("[data-testid='stException']").all_inner_texts()
            person.errors += [f"{action}: exception box: {b.splitlines()[0]}" for b in boxes]
            if boxes:
                person.where = ""
            if stop.is_set() and turn >= len(actions):
                break
            await asyncio.sleep(max(0.0, pace - (time.perf_counter() - began)))
    finally:
        with suppress(Exception):  # already gone when the run is interrupted
            await context.close()


async def run_phase(url: str, sockets: int, browsers: int, actions: list[str],
                    browser_actions: list[str], pad: bool, pace: float,
                    on_move=None) -> list[Person]:  # fmt: skip
    """``sockets`` protocol people doing ``actions`` and ``browsers`` chromium people doing
    ``browser_actions`` (repeated until the protocol people are done), all at once;
    returns them, the protocol people first. ``on_move(person)`` after a protocol move."""
    n = sockets + browsers
    stride = max(7, n)
    people = [Person(i, False, stride=stride) for i in range(sockets)]
    people += [Person(sockets + i, pad, stride=stride, kind="chromium") for i in range(browsers)]
    stop = asyncio.Event()

    async def staggered(person: Person, work):
        await asyncio.sleep(person.index * pace / max(1, n))  # people start a little apart
        await work

    async def sockets_then_stop():
        try:
            await asyncio.gather(
                *(staggered(p, socket_session(url, p, own_order(actions, p.index, n), pace,
                                              on_move))
                  for p in people if p.kind == "socket")
            )  # fmt: skip
        finally:
            stop.set()

    if not browsers:
        await sockets_then_stop()
        return people
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            await asyncio.gather(
                sockets_then_stop(),
                *(staggered(p, _chromium_until(browser, url, p, browser_actions, pace, stop))
                  for p in people if p.kind == "chromium"),
            )  # fmt: skip
        finally:
            with suppress(Exception):
                await browser.close()
    return people
