"""The people of ``app_load.py`` who speak Streamlit's protocol (``app_load_protocol``): the
same four actions as a chromium person, timed from the move's ``BackMsg`` to the delta that
answers it (the server's path: what a browser would draw from, less the drawing).

- Synthesise: direction 1's slider one 0.05 step (ten one way, ten back), to the first audio
  element whose URL the page did not have: the new sound.
- Interpolate: α one step, likewise; the run's caption must say this session's α.
- Explore: a map pick (the selection the frontend sends for a click on a point: its
  ``customdata`` and index), to the clip's heading; it must name the clip picked.
- Morph: "Make the morph", to its download button.

The app keeps sounds per checkpoint and code (``ui.cache.sound``), for every session: people
who all moved through the same codes would hear each other's cached sounds and measure the
cache. So each person, numbered once per process (``SEEDS``), starts somewhere of its own,
untimed: Synthesise's direction 8 at a value of its own, Interpolate's clip A a clip of its
own, its map picks from its own place in its share of the points. A Synthesise sound is the
same bytes for the same code (decode and Griffin-Lim are deterministic), so a session that
hears another URL at a value it heard before is reported as a leak.
"""

from __future__ import annotations

import base64
import itertools
import json
import re

import numpy as np

from benchmarks.app_load_protocol import ProtocolSession, Run

PAGE_OF = {"synthesise": "Synthesise", "interpolate": "Interpolate", "explore": "Explore",
           "morph": "Interpolate"}  # fmt: skip
STEP = 0.05  # both sliders' step
SEEDS = itertools.count()  # each person's own starting place (see the module's docstring)
OWN_SLIDER = "synth-dir-7"  # set once per person to a value of its own
PAD_TOGGLE = "pad-toggle"  # "Sound while dragging": a person without a browser turns it off


class Answerless(RuntimeError):
    """A run that ended without the element that answers the move."""


def _audio_urls(session: ProtocolSession) -> set[str]:
    return {e.proto.url for e in session.elements.values() if e.kind == "audio"}


def _new_audio(run: Run, before: set[str]) -> float:
    found = run.first("audio", lambda a: a.url not in before)
    if found is None:
        raise Answerless(f"no new audio in the run ({run.status}, {run.finished_ms:.0f} ms)")
    return found.ms


def _decoded(values) -> list:
    """A plotly array as JSON holds it: a list, or ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"]).tolist()
    return list(values or [])


def map_points(spec: str) -> list[dict]:
    """The map's clickable points as the frontend reports a click on one: trace, index, x, y
    and ``customdata`` (the clip id), for every point whose id is a dataset clip's."""
    points = []
    for curve, trace in enumerate(json.loads(spec).get("data", [])):
        ids = trace.get("customdata")
        if not ids:
            continue
        xs, ys = _decoded(trace.get("x")), _decoded(trace.get("y"))
        for i, clip in enumerate(ids):
            clip_id = clip[0] if isinstance(clip, list) else clip
            if isinstance(clip_id, str) and not clip_id.startswith("yours"):
                points.append({"curve_number": curve, "point_number": i, "point_index": i,
                               "x": xs[i] if i < len(xs) else 0.0,
                               "y": ys[i] if i < len(ys) else 0.0, "customdata": clip})  # fmt: skip
    return points


def plain(markdown: str) -> str:
    """What a page shows for Markdown source made by ``ui.safe_text.md``: escapes resolved,
    word joiners gone."""
    text = re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")
    return text.replace("&lt;", "<")


def _clip_of(point: dict) -> str:
    clip = point["customdata"]
    return str(clip[0] if isinstance(clip, list) else clip)


class SocketPerson:
    """One protocol session acting as a person; results go to ``person`` (a ``Person``)."""

    def __init__(self, session: ProtocolSession, person):
        self.s, self.p = session, person
        self.seed = next(SEEDS)
        self.heard: dict = {}  # (slider key, value) -> the audio URL this session heard
        self.started: set[str] = set()  # pages where this person took its own place
        self.where = ""
        self.values = {"synth-dir-0": 0.0, "interp-alpha": 0.5}
        self.nudges = {"synth-dir-0": 0, "interp-alpha": 0}
        self.picks = 0
        self.last_run_ms = 0.0  # the timed move's whole rerun, to its script_finished

    async def go(self, title: str) -> None:
        """Open ``title`` (untimed), the in-browser pad switched off as a person would."""
        if self.where == title:
            return
        self._check(await self.s.goto(title), f"open {title}")
        if self.s.has(PAD_TOGGLE):
            wid, _ = self.s.widget(PAD_TOGGLE)
            if self.s.states.get(wid) is not None and self.s.states[wid].bool_value:
                self._check(await self.s.set(PAD_TOGGLE, False), "pad off")
        if title not in self.started:
            self.started.add(title)
            await self._own_place(title)
        self.where = title

    async def _own_place(self, title: str) -> None:
        """A starting point no other person of this process has (untimed)."""
        if title == "Synthesise" and self.s.has(OWN_SLIDER):
            value = round(-3.0 + STEP * (self.seed % 121), 2)
            self._check(await self.s.set(OWN_SLIDER, value), "own place")
        elif title == "Interpolate" and self.s.has("interp-a-clip"):
            options = list(self.s.widget("interp-a-clip")[1].proto.options)
            if options:
                clip = options[(self.seed * 37) % len(options)]
                self._check(await self.s.set("interp-a-clip", clip), "own place")

    def _check(self, run: Run, what: str) -> Run:
        self.last_run_ms = run.finished_ms
        self.p.errors += [f"{what}: exception box: {e}" for e in run.exceptions()]
        if run.exceptions():
            self.where = ""
        return run

    async def act(self, action: str) -> float:
        """One action on its page; ms from the move sent to its answer."""
        await self.go(PAGE_OF[action])
        if action == "synthesise":
            return await self._slide("synth-dir-0", action)
        if action == "interpolate":
            return await self._slide("interp-alpha", action)
        if action == "explore":
            return await self._pick()
        return await self._morph()

    async def _slide(self, key: str, action: str) -> float:
        done = self.nudges[key]
        self.nudges[key] = done + 1
        step = STEP if (done // 10) % 2 == 0 else -STEP
        value = self.values[key] = round(self.values[key] + step, 2)
        before = _audio_urls(self.s)
        run = self._check(await self.s.set(key, value), action)
        took = _new_audio(run, before)
        if key == "interp-alpha":
            said = [plain(t) for t in run.texts("markdown") if t.startswith("mix at α")]
            if said and said[0] != f"mix at α = {value:.2f}":
                self.p.leaks.append(f"session {self.p.index} set α {value:.2f}, shown {said[0]!r}")
        else:
            url = run.first("audio", lambda a: a.url not in before).element.proto.url
            earlier = self.heard.setdefault((key, value), url)
            if earlier != url:
                self.p.leaks.append(f"session {self.p.index} at {key}={value:.2f} heard {url}, "
                                    f"there before {earlier}")  # fmt: skip
        return took

    async def _pick(self) -> float:
        _, chart = self.s.widget("explore-map")
        points = map_points(chart.proto.spec)
        if not points:
            raise Answerless("the map has no clip to pick")
        mine = points[self.p.index :: self.p.stride] or points
        point = mine[(self.seed * 10 + self.picks) % len(mine)]
        self.picks += 1
        clip = _clip_of(point)
        selection = {"selection": {"points": [point], "point_indices": [point["point_index"]],
                                   "box": [], "lasso": []}}  # fmt: skip
        run = self._check(await self.s.set("explore-map", selection), "explore")
        heading = run.first("heading", lambda e: " — " in e.body)
        if heading is None:
            raise Answerless(f"no clip heading after picking {clip!r}")
        shown = plain(heading.element.proto.body).split(" — ")[0].strip()
        if shown != clip:
            self.p.leaks.append(f"session {self.p.index} picked {clip!r}, shown {shown!r}")
        return heading.ms

    async def _morph(self) -> float:
        # The button makes a morph each press, and its run sends the download button anew:
        # unlike a chromium person, no path switch first (a whole rerun) to tell one from
        # the last.
        run = self._check(await self.s.click("interp-morph"), "morph")
        button = run.first("download_button", lambda e: e.id.endswith("-interp-download"))
        if button is None:
            raise Answerless("no morph download after Make the morph")
        return button.ms
