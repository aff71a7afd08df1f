"""A person without a browser: Streamlit's own websocket protocol, spoken as its frontend does.

``app_load.py`` needs many sessions on one server, and six chromium renderers on one core
measure the client, not the server. Here one session is one websocket to
``/_stcore/stream`` (subprotocol ``streamlit``; Host and Origin are the server's own address,
as a page loaded from it sends them, so the app's host check passes): every move is a
``BackMsg`` ``rerun_script`` carrying what the frontend would send (the page's script hash,
the state of every widget on the page, the moved one changed, and the fragment id when that
widget was drawn inside an ``st.fragment``), and the answer is read from the ``ForwardMsg``
deltas as they arrive, each with its time since the move was sent.

A widget is found by its user key (Streamlit's element id ends in ``-<key>``); its default
value comes from its element, as the frontend reads it when it draws the widget. Elements not
drawn again by a full run are dropped at ``script_finished`` (a fragment's run replaces only
its own), and so are the states of widgets no longer on the page.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

FINISHED = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "ok",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "ok",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile error",
    ForwardMsg.FINISHED_EARLY_FOR_RERUN: "interrupted",
}
MAX_MESSAGE = 64 * 2**20  # a page's deltas: a map of 3,000 points is about 0.3 MB


@dataclass
class Element:
    """One drawn element: its kind (``audio``, ``slider``...), its proto and its fragment."""

    kind: str
    proto: Any
    fragment_id: str = ""


@dataclass
class Delta:
    """An element as it arrived during a run: ms after the move was sent."""

    ms: float
    path: tuple[int, ...]
    element: Element


@dataclass
class Run:
    """What one rerun sent back: its elements in order of arrival, how it ended."""

    sent: float  # time.perf_counter() when the BackMsg left
    deltas: list[Delta] = field(default_factory=list)
    status: str = ""
    finished_ms: float = 0.0

    def first(self, kind: str, test=lambda proto: True) -> Delta | None:
        """The first element of ``kind`` whose proto passes ``test``, or None."""
        return next(
            (d for d in self.deltas if d.element.kind == kind and test(d.element.proto)), None
        )

    def exceptions(self) -> list[str]:
        """The exception boxes the run drew: their type and message."""
        return [
            f"{d.element.proto.type}: {d.element.proto.message}"[:200]
            for d in self.deltas
            if d.element.kind == "exception"
        ]

    def texts(self, kind: str) -> list[str]:
        """The bodies of the run's ``heading`` or ``markdown`` elements."""
        return [d.element.proto.body for d in self.deltas if d.element.kind == kind]


def default_state(kind: str, proto: Any) -> WidgetState | None:
    """The value a freshly drawn widget reports before anyone touches it, as the frontend
    sends it (its ``value`` when the script set one, else its default); None for widgets
    with no state until used (buttons, charts, uploads)."""
    state = WidgetState(id=proto.id)
    if kind == "slider":
        state.double_array_value.data[:] = list(proto.value if proto.set_value else proto.default)
    elif kind in ("radio", "selectbox"):
        options = list(proto.options)
        if proto.set_value and proto.raw_value:
            state.string_value = proto.raw_value
        elif proto.HasField("default") and 0 <= proto.default < len(options):
            state.string_value = options[proto.default]
        else:
            return None
    elif kind == "checkbox":
        state.bool_value = proto.value if proto.set_value else proto.default
    elif kind == "number_input":
        if proto.set_value:
            state.double_value = proto.value
        elif proto.HasField("default"):
            state.double_value = proto.default
        else:
            return None
    elif kind == "multiselect":
        options = list(proto.options)
        chosen = list(proto.raw_values) if proto.set_value else [options[i] for i in proto.default]
        state.string_array_value.data[:] = chosen
    else:
        return None
    return state


class ProtocolSession:
    """One session of the app over its websocket. ``async with ProtocolSession(url)``."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.pages: dict[str, str] = {}  # page title -> page_script_hash
        self.page_hash = ""
        self.session_id = ""
        self.elements: dict[tuple[int, ...], Element] = {}
        self.states: dict[str, WidgetState] = {}  # widget id -> what the frontend would send
        self._ws = None

    async def __aenter__(self) -> ProtocolSession:
        from websockets.asyncio.client import connect

        host = self.url.split("://", 1)[-1]
        self._ws = await connect(
            f"ws://{host}/_stcore/stream",
            subprotocols=["streamlit"],
            origin=self.url,  # the page's own origin: same-origin, as a browser sends it
            max_size=MAX_MESSAGE,
            open_timeout=self.timeout,
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self._ws is not None:
            await self._ws.close()

    # ---------------------------------------------------------------- widgets by key

    def widget(self, key: str) -> tuple[str, Element]:
        """The widget drawn with ``key=key``: its id and element. KeyError if not on the page."""
        for element in self.elements.values():
            wid = getattr(element.proto, "id", "")
            if isinstance(wid, str) and wid.endswith(f"-{key}"):
                return wid, element
        raise KeyError(f"no widget with key {key!r} on the page")

    def has(self, key: str) -> bool:
        try:
            self.widget(key)
        except KeyError:
            return False
        return True

    # ---------------------------------------------------------------- moves

    async def open(self) -> Run:
        """The first run, as a page load asks for it (the default page)."""
        return await self.rerun()

    async def goto(self, title: str) -> Run:
        """Switch to the page titled ``title`` (as a click in the sidebar's navigation)."""
        if title not in self.pages:
            raise KeyError(f"no page {title!r}; the app lists {sorted(self.pages)}")
        self.page_hash = self.pages[title]
        return await self.rerun()

    async def set(self, key: str, value: Any) -> Run:
        """Give the widget ``key`` a new value (a slider: a float or a list) and rerun."""
        wid, element = self.widget(key)
        state = WidgetState(id=wid)
        if element.kind == "slider":
            values = value if isinstance(value, list | tuple) else [value]
            state.double_array_value.data[:] = [float(v) for v in values]
        elif element.kind in ("radio", "selectbox"):
            state.string_value = str(value)
        elif element.kind == "checkbox":
            state.bool_value = bool(value)
        elif element.kind == "number_input":
            state.double_value = float(value)
        elif element.kind == "plotly_chart":
            state.string_value = json.dumps(value)
        else:
            raise TypeError(f"{key!r} is a {element.kind}: set() does not drive it")
        self.states[wid] = state
        return await self.rerun(element.fragment_id)

    async def click(self, key: str) -> Run:
        """Press the button ``key`` (a trigger: true for this run only)."""
        wid, element = self.widget(key)
        trigger = WidgetState(id=wid, trigger_value=True)
        return await self.rerun(element.fragment_id, extra=[trigger])

    async def rerun(self, fragment_id: str = "", extra: list[WidgetState] = ()) -> Run:
        """Send one ``rerun_script`` and read every message until its ``script_finished``."""
        msg = BackMsg()
        client = msg.rerun_script
        client.query_string = ""
        client.page_script_hash = self.page_hash
        client.widget_states.widgets.extend([*self.states.values(), *extra])
        if fragment_id:
            client.fragment_id = fragment_id
        run = Run(sent=time.perf_counter())
        await self._ws.send(msg.SerializeToString())
        touched: set[tuple[int, ...]] = set()
        while True:
            raw = await self._recv(run)
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            ms = (time.perf_counter() - run.sent) * 1000
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                self.session_id = fwd.new_session.initialize.session_id
                self.page_hash = self.page_hash or fwd.new_session.page_script_hash
            elif kind == "navigation":
                nav = fwd.navigation
                self.pages = {p.page_name: p.page_script_hash for p in nav.app_pages}
                self.page_hash = nav.page_script_hash or self.page_hash
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                new = fwd.delta.new_element
                element_kind = new.WhichOneof("type")
                element = Element(element_kind, getattr(new, element_kind), fwd.delta.fragment_id)
                path = tuple(fwd.metadata.delta_path)
                self.elements[path] = element
                touched.add(path)
                run.deltas.append(Delta(ms, path, element))
                self._learn(element)
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "add_block":
                path = tuple(fwd.metadata.delta_path)
                touched.add(path)
            elif kind == "script_finished":
                run.status = FINISHED.get(fwd.script_finished, str(fwd.script_finished))
                run.finished_ms = ms
                if run.status != "interrupted":
                    self._forget(touched, fragment_id)
                    return run

    async def _recv(self, run: Run) -> bytes:
        import asyncio

        left = self.timeout - (time.perf_counter() - run.sent)
        try:
            return await asyncio.wait_for(self._ws.recv(), max(0.1, left))
        except TimeoutError:
            raise TimeoutError(f"no script_finished within {self.timeout:.0f} s") from None

    def _learn(self, element: Element) -> None:
        """A widget drawn for the first time reports its default, as the frontend's does;
        one the script set (``set_value``) reports what the script set."""
        wid = getattr(element.proto, "id", "")
        if not isinstance(wid, str) or not wid.startswith("$$ID"):
            return
        if wid not in self.states or getattr(element.proto, "set_value", False):
            state = default_state(element.kind, element.proto)
            if state is not None:
                self.states[wid] = state

    def _forget(self, touched: set[tuple[int, ...]], fragment_id: str) -> None:
        """Drop what this run did not draw again (a fragment's run: only its own), and the
        states of widgets no longer drawn."""
        stale = [
            path
            for path, element in self.elements.items()
            if path not in touched and (not fragment_id or element.fragment_id == fragment_id)
        ]
        for path in stale:
            del self.elements[path]
        drawn = {getattr(e.proto, "id", "") for e in self.elements.values()}
        self.states = {wid: s for wid, s in self.states.items() if wid in drawn}
