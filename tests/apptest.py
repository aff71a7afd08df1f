"""Open one page of the real app (``app.py`` with its navigation and sidebar) in AppTest."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def open_page(page: str, timeout: float = 120, **state) -> AppTest:
    """Run ``app.py`` and switch to ``app_pages/<page>.py``; ``state`` seeds session_state.

    The app reads its workspace (data/, checkpoints/) from the working directory: chdir
    into a workspace (e.g. the ``studio_root`` fixture) before calling.
    """
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page != "home":
        at.switch_page(f"app_pages/{page}.py")
        at.run()
    return at


def chart_traces(at: AppTest, key: str) -> list[dict]:
    """The traces of the plotly chart with widget ``key`` on the page, with every typed
    array (plotly's ``{"dtype", "bdata", "shape"}``) decoded to a numpy array."""
    for element in at.get("plotly_chart"):
        if key in element.proto.id:
            return [_decode(trace) for trace in json.loads(element.proto.spec)["data"]]
    raise AssertionError(f"no plotly chart with key {key!r} on the page")


def _decode(value):
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
        return array
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def clip_traces(traces: list[dict]) -> list[dict]:
    """Explore's map traces of the clips (one per colour group), without the ring, the route
    and the star of an upload."""
    others = ("selected", "route")
    return [t for t in traces if t["name"] not in others and not t["name"].startswith("yours")]


def clip_coords(traces: list[dict]) -> dict[str, tuple[float, float]]:
    """Clip id -> (x, y) over Explore's map traces of the clips."""
    out = {}
    for t in clip_traces(traces):
        ids, xs, ys = np.asarray(t["customdata"]), np.asarray(t["x"]), np.asarray(t["y"])
        out.update({str(c): (float(x), float(y)) for c, x, y in zip(ids, xs, ys, strict=True)})
    return out


def audio_urls(at: AppTest) -> list[str]:
    """Media URLs of the page's audio players: a new sound gets a new URL (a content hash)."""
    return [element.proto.url for element in at.get("audio")]


def forget_training_data(checkpoint: Path) -> None:
    """Point a (copied) checkpoint's record of its training data at a folder that is gone,
    as when the dataset was deleted or the checkpoint came from another machine."""
    config = checkpoint / "config.json"
    info = json.loads(config.read_text())
    info["dataset"]["path"] = str(checkpoint.parent / "deleted-dataset")
    config.write_text(json.dumps(info))


def map_click_states(at: AppTest, customdata) -> object:
    """The page's widget values with a click on Explore's map point ``customdata``: the
    chart's selection JSON, as the browser sends it. AppTest has no API for plotly
    selections, so one widget state is added by hand (private ``_tree``)."""
    chart = [c for c in at.get("plotly_chart") if c.key == "explore-map"][0]
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = chart.proto.id
    point = {"curve_number": 0, "point_number": 0, "point_index": 0, "x": 0.0, "y": 0.0}
    selection = {"points": [{**point, "customdata": customdata}], "point_indices": [0]}
    state.string_value = json.dumps({"selection": {**selection, "box": [], "lasso": []}})
    return states
