"""The load benchmark's person without a browser (``benchmarks/app_load_protocol.py``) drives
a real ``streamlit run app.py`` as the frontend does: the host check lets it in, a slider
move on Synthesise brings a new sound (and the same value the same sound), a map pick on
Explore brings the picked clip's heading. If the protocol it speaks drifted from Streamlit's
(a widget state the server ignores, a page hash it does not know), no new audio comes and
these fail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.app_load_protocol import ProtocolSession, default_state
from benchmarks.app_load_socket_people import map_points, plain
from tests.browser import SHIPPED, serve_app, with_shipped_checkpoint

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHIPPED.is_dir(), reason=f"no shipped checkpoint at {SHIPPED}"),
]


def _urls(session: ProtocolSession) -> set[str]:
    return {e.proto.url for e in session.elements.values() if e.kind == "audio"}


async def _drive(url: str) -> dict:
    seen: dict = {}
    async with ProtocolSession(url) as session:
        first = await session.open()
        seen["home"] = first.texts("heading")
        await session.goto("Synthesise")
        wid, slider = session.widget("synth-dir-0")
        seen["default"] = list(session.states[wid].double_array_value.data)
        before = _urls(session)
        moved = await session.set("synth-dir-0", 0.25)
        seen["moved"] = [d.element.proto.url for d in moved.deltas if d.element.kind == "audio"]
        seen["before"] = before
        seen["exceptions"] = moved.exceptions()
        back = await session.set("synth-dir-0", 0.0)
        seen["back"] = [d.element.proto.url for d in back.deltas if d.element.kind == "audio"]
        await session.goto("Explore")
        _, chart = session.widget("explore-map")
        point = map_points(chart.proto.spec)[5]
        picked = await session.set(
            "explore-map",
            {"selection": {"points": [point], "point_indices": [5], "box": [], "lasso": []}},
        )
        heading = picked.first("heading", lambda h: " — " in h.body)
        seen["picked"] = point["customdata"]
        seen["heading"] = plain(heading.element.proto.body) if heading else None
    return seen


def test_a_protocol_session_moves_a_slider_and_picks_a_clip(tmp_path: Path):
    with_shipped_checkpoint(tmp_path)
    with serve_app(tmp_path, "protocol-session.log", VAE_SOUND_PAD="0") as url:
        seen = asyncio.run(_drive(url))
    assert any("Sound VAE Studio" in h for h in seen["home"])  # the host check let it in
    assert seen["default"] == [0.0]
    assert seen["exceptions"] == []
    assert len(seen["moved"]) == 1 and seen["moved"][0] not in seen["before"]  # a new sound
    assert seen["back"] and seen["back"][0] in seen["before"]  # the same value, the same sound
    assert seen["heading"] is not None
    assert seen["heading"].split(" — ")[0] == str(seen["picked"])


def test_a_widget_reports_its_default_as_the_frontend_does():
    from streamlit.proto.Radio_pb2 import Radio
    from streamlit.proto.Slider_pb2 import Slider

    slider = Slider(id="$$ID-x-s", default=[0.5])
    assert list(default_state("slider", slider).double_array_value.data) == [0.5]
    slider.value[:] = [0.75]
    slider.set_value = True  # the script set it: that value, not the default
    assert list(default_state("slider", slider).double_array_value.data) == [0.75]
    radio = Radio(id="$$ID-x-r", options=["lerp", "slerp"], default=1)
    assert default_state("radio", radio).string_value == "slerp"
    assert default_state("button", radio) is None  # no state until pressed
