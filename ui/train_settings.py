"""The Train page's settings widgets: their values from a job's options, and kept per session.

Streamlit drops a keyed widget's value when the user leaves its page, so Epochs came back at
its default and Resume would have trained to it. The values live under a key of our own
(``SETTINGS``) and go back into the widgets' keys before the widgets are drawn; the widgets
then take no ``value=`` of their own (Streamlit warns when both are given). A run's own
options (``vae.jobs.runner.settings``) or a recipe set the widgets the same way.

Each widget is drawn from its option's description (``vae.options.Option`` of a
TrainConfig or ModelOptions field): label, help, range, choices, and its key
``train-<field-with-dashes>``; so a new training option is a widget without code here. Stage
2's widgets are drawn the same way from ``SharpenConfig``'s fields (keys
``train-sharpen-<field>``), and show the stage settings of the folder the page is on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import streamlit as st

from vae.jobs.options import JobOptions, SharpenOptions
from vae.options import Option
from vae.training.model_options import MODEL_OPTIONS
from vae.training.sharpen_config import OPTIONS as SHARPEN_DESCRIBED
from vae.training.train_config import OPTIONS

SETTINGS = "train-settings"  # widget key -> value, as this session last left them
LOADED = "train-loaded"  # the checkpoint folder whose run's settings the widgets were set from
OWN = "train-own"  # the person's own settings, put aside while the widgets show a run's

DESCRIBED: dict[str, Option] = {**MODEL_OPTIONS, **OPTIONS}  # JobOptions field -> its Option
_TYPES = {f.name: str(f.type) for f in fields(JobOptions)}


def key_of(name: str) -> str:
    """The Train page's widget key of a JobOptions field: ``batch_size`` -> ``train-batch-size``."""
    return "train-" + name.replace("_", "-")


KEYS = {name: key_of(name) for name in DESCRIBED}  # JobOptions field -> the widget's key
INTS = tuple(n for n in DESCRIBED if _TYPES[n].startswith("int"))
FLOATS = tuple(n for n in DESCRIBED if _TYPES[n].startswith("float"))
ADVANCED = tuple(n for n, d in DESCRIBED.items() if d.advanced)  # in the Advanced expander


def choices(judges: Sequence[str]) -> dict[str, list[object]]:
    """Widget key -> the values its selectbox offers (``judges``: the judge folders)."""
    offered: dict[str, list[object]] = {KEYS[n]: list(d.choices) for n, d in DESCRIBED.items()
                                        if d.choices}  # fmt: skip
    return {**offered, KEYS["judge"]: list(judges)}


def widget(where: Any, name: str, offered: Sequence[object] | None = None, **extra: Any) -> Any:
    """Draw the widget of JobOptions field ``name`` in ``where`` (``st`` or a column) from its
    Option: a checkbox, a selectbox (its choices, or ``offered``), a number input (its range)
    or a text input; ``extra`` goes to the widget. Returns the widget's value."""
    return _draw(where, DESCRIBED[name], _TYPES[name], KEYS[name], offered, **extra)


def _draw(
    where: Any,
    described: Option,
    kind_of: str,
    widget_key: str,
    offered: Sequence[object] | None,
    **extra: Any,
) -> Any:
    """The widget of an option described by ``described`` whose field's type is ``kind_of``."""
    tip = described.tip or described.help
    if kind_of == "bool":
        return where.checkbox(described.label, key=widget_key, help=tip, **extra)
    if offered is not None or described.choices:
        shown = list(described.choices if offered is None else offered)
        return where.selectbox(described.label, shown, key=widget_key, help=tip, **extra)
    if kind_of.startswith(("int", "float")):
        kind = int if kind_of.startswith("int") else float
        low = described.min if described.low is None else described.low
        bounds = [None if b is None else kind(b) for b in (low, described.max)]
        step = None if described.step is None else kind(described.step)
        return where.number_input(described.label, *bounds, step=step, format=described.format,
                                  key=widget_key, help=tip, **extra)  # fmt: skip
    return where.text_input(described.label, key=widget_key, help=tip, **extra)


def given(names: Sequence[str]) -> dict[str, Any]:
    """The values of these fields' widgets as JobOptions values (numbers of their type;
    ``channels`` and ``judge`` are the page's to read)."""
    values: dict[str, Any] = {}
    for name in names:
        value = st.session_state[KEYS[name]]
        if name in INTS:
            value = int(value)
        elif name in FLOATS:
            value = float(value)
        values[name] = value
    return values


def widget_values(options: JobOptions) -> dict[str, object]:
    """The widgets' values (by widget key) for ``options``, defaults filled in; numbers as
    the type their widget holds (a number_input refuses a float where it counts ints)."""
    full = options.resolved()
    values: dict[str, object] = {}
    for name, key in KEYS.items():
        value = getattr(full, name)
        if name in INTS:
            value = int(value)
        elif name in FLOATS:
            value = float(value)
        elif name == "channels":
            value = ",".join(str(int(c)) for c in value) if value else ""
        elif _TYPES[name] == "bool":
            value = bool(value)
        values[key] = value
    return values


def _as_offered(key: str, value: object, choices: Mapping[str, Sequence[object]]) -> object:
    """``value`` as the selectbox of ``key`` offers it: a folder stored as an absolute path
    (the CLI's way with a judge) is the offered path to the same folder."""
    if not isinstance(value, str) or value in choices.get(key, [value]):
        return value
    where = Path(value).absolute()
    same = [o for o in choices[key] if isinstance(o, str) and Path(o).absolute() == where]
    return same[0] if same else value


def _allowed(key: str, value: object, choices: Mapping[str, Sequence[object]]) -> bool:
    """Whether a selectbox can show ``value`` (a judge since deleted, a device like cuda:1
    cannot; the widget then keeps its own)."""
    return key not in choices or value in choices[key]


def set_widgets(values: Mapping[str, object], choices: Mapping[str, Sequence[object]]) -> None:
    """Put ``values`` into the widgets (call before they are drawn) and keep them."""
    values = {k: _as_offered(k, v, choices) for k, v in values.items()}
    kept = {k: v for k, v in values.items() if _allowed(k, v, choices)}
    st.session_state.update(kept)
    st.session_state[SETTINGS] = {**st.session_state.get(SETTINGS, {}), **kept}


def restore(defaults: Mapping[str, object], choices: Mapping[str, Sequence[object]]) -> None:
    """Give each widget that lost its value (its page was left) the value this session
    left it with, else ``defaults``; call before the widgets are drawn."""
    for key, value in {**defaults, **st.session_state.get(SETTINGS, {})}.items():
        if key not in st.session_state and _allowed(key, value, choices):
            st.session_state[key] = value


def keep() -> None:
    """Note the widgets' values under our own key; call after they are drawn."""
    keys = [k for k in KEYS.values() if k in st.session_state]
    st.session_state[SETTINGS] = {k: st.session_state[k] for k in keys}


def load_run(folder: str, options: JobOptions | None, choices) -> None:
    """Show the settings of the run in ``folder`` once, when the page turns to that folder
    (a reloaded page re-attaching to a run, or a name typed in): not the page's defaults,
    nor another run's. The person's own settings are put aside meanwhile and come back
    when they turn to a folder without a run (to start their own). Call after ``restore``."""
    if st.session_state.get(LOADED) == folder:
        return
    st.session_state[LOADED] = folder
    if options is not None:
        current = {k: st.session_state[k] for k in KEYS.values() if k in st.session_state}
        st.session_state.setdefault(OWN, current)  # from run to run: still the first
        set_widgets(widget_values(options), choices)
    elif OWN in st.session_state:
        set_widgets(st.session_state.pop(OWN), choices)


RECIPE = "train-recipe"  # the recipe box: the recipe the widgets hold, None once changed


def choose_recipe(recipes: Mapping[str, JobOptions], choices) -> None:
    """The recipe box's on_change: the chosen recipe's values into the widgets (a callback
    runs before the widgets are drawn, when their values may still be set)."""
    name = st.session_state.get(RECIPE)
    if name in recipes:
        set_widgets(widget_values(recipes[name]), choices)


def matching(recipes: Mapping[str, JobOptions], ignore: Sequence[str] = ()) -> str | None:
    """The recipe whose values the widgets hold (widget keys in ``ignore`` aside), or None
    once the person has changed one: the recipe box then says the settings are their own."""
    for name, options in recipes.items():
        wanted = {k: v for k, v in widget_values(options).items() if k not in ignore}
        if all(st.session_state.get(k) == v for k, v in wanted.items()):
            return name
    return None


# ------------------------------------------------------------------------------ stage 2

SHARPEN_SETTINGS = "train-sharpen-settings"  # sharpen widget key -> value, as last left
SHARPEN_LOADED = "train-sharpen-loaded"  # the folder whose stage settings they were set from
SHARPEN_KEYS = {name: "train-sharpen-" + name.replace("_", "-") for name in SHARPEN_DESCRIBED}
_SHARPEN_TYPES = {f.name: str(f.type) for f in fields(SharpenOptions)}
SHARPEN_ADVANCED = tuple(n for n, d in SHARPEN_DESCRIBED.items() if d.advanced)


def sharpen_choices(judges: Sequence[str]) -> dict[str, list[object]]:
    """Sharpen widget key -> the values its selectbox offers (the judge: none, or a folder)."""
    offered: dict[str, list[object]] = {
        SHARPEN_KEYS[n]: list(d.choices) for n, d in SHARPEN_DESCRIBED.items() if d.choices
    }
    return {**offered, SHARPEN_KEYS["judge"]: [None, *judges]}


def sharpen_widget(
    where: Any, name: str, offered: Sequence[object] | None = None, **extra: Any
) -> Any:
    """Draw the widget of SharpenOptions field ``name`` as ``widget`` draws a training one."""
    described, kind_of = SHARPEN_DESCRIBED[name], _SHARPEN_TYPES[name]
    return _draw(where, described, kind_of, SHARPEN_KEYS[name], offered, **extra)


def _typed(kind_of: str, value: Any) -> Any:
    """A number as the type its widget holds (a number_input refuses a float counting ints)."""
    if value is not None and kind_of.startswith("int"):
        return int(value)
    if value is not None and kind_of.startswith("float"):
        return float(value)
    return value


def sharpen_values(options: SharpenOptions) -> dict[str, object]:
    """The sharpen widgets' values (by widget key) for ``options``, defaults filled in."""
    full = options.resolved()
    return {key: _typed(_SHARPEN_TYPES[n], getattr(full, n)) for n, key in SHARPEN_KEYS.items()}


def load_sharpen(
    folder: str, options: SharpenOptions, choices: Mapping[str, Sequence[object]]
) -> None:
    """Show ``options`` (the stage settings of ``folder``) in the sharpen widgets when the
    page turns to that folder; otherwise give each widget that lost its value (its page was
    left) the value this session left it with. Call before the widgets are drawn."""
    if st.session_state.get(SHARPEN_LOADED) != folder:
        st.session_state[SHARPEN_LOADED] = folder
        values = {k: _as_offered(k, v, choices) for k, v in sharpen_values(options).items()}
        shown = {k: v for k, v in values.items() if _allowed(k, v, choices)}
        st.session_state[SHARPEN_SETTINGS] = shown
        st.session_state.update(shown)
        return
    for key, value in st.session_state.get(SHARPEN_SETTINGS, {}).items():
        if key not in st.session_state and _allowed(key, value, choices):
            st.session_state[key] = value


def keep_sharpen() -> None:
    """Note the sharpen widgets' values under our own key; call after they are drawn."""
    keys = [k for k in SHARPEN_KEYS.values() if k in st.session_state]
    st.session_state[SHARPEN_SETTINGS] = {k: st.session_state[k] for k in keys}


def sharpen_given(names: Sequence[str]) -> dict[str, Any]:
    """The values of these SharpenOptions fields' widgets, numbers of their type."""
    return {n: _typed(_SHARPEN_TYPES[n], st.session_state[SHARPEN_KEYS[n]]) for n in names}
