"""One description per option: :class:`Option` (help, label, range, choices, unit), kept in a
dataclass field's metadata by :func:`option`, from which a command's flags, a page's widgets
and the config's own checks are all built.

The training configs (``vae.training``) and the feature settings (``vae.audio.features``)
are described with it. It imports nothing of ``vae``, so the lowest packages can use it
without reaching up (audio must never import training).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """How one option is described, offered and checked.

    Attributes:
        help: the ``--help`` text of its CLI flag.
        label: the page widget's label; tip: that widget's help (default ``help``).
        min: the smallest value allowed (inclusive), checked by the config.
        positive: the value must be above 0 (instead of ``min``).
        most: the largest value allowed (inclusive), checked by the config (see
            :meth:`excess`) and the CLI flag's upper bound; None: not capped.
        least: the CLI flag's lower bound where it is stricter than ``min`` (the config
            still reads a stored value down to ``min``).
        max: the widget's upper bound (the CLI and the config cap only at ``most``).
        low: the widget's lower bound where it is not ``min`` (a positive learning rate).
        step, format: the number widget's step and format.
        unit: the value's unit (Hz, s, dB, samples), said in messages.
        choices: the values the CLI flag and the widget offer; checked unless ``open``.
        open: other values pass too (a device like cuda:1), checked by the config.
        rule: what the error message says the value must be, e.g. "0 (off) or more".
        advanced: shown in the page's "Advanced" expander.
        group: the CLI argument group it belongs to (None: the command's own options).
        name: the setting's name where a person sets it by another than the field's
            (``hop`` sets ``hop_length``): the CLI flag ``--hop``, the widget ``...-hop``.
        internal: not a person's setting (no flag, no widget): described and checked only.
        checked: False where the range is the setting's, not the stored field's (a clip
            length set in seconds, stored in samples, and checked in samples by the config).
        since_default: written out only when not its default (see :func:`stored`): a field
            added after a format was fixed leaves older files' keys and fingerprints as
            they were.
    """

    help: str
    label: str
    tip: str = ""
    min: float | None = None
    positive: bool = False
    most: float | None = None
    least: float | None = None
    max: float | None = None
    low: float | None = None
    step: float | None = None
    format: str | None = None
    unit: str = ""
    choices: tuple[Any, ...] = ()
    open: bool = False
    rule: str = ""
    advanced: bool = True
    group: str | None = None
    name: str = ""
    internal: bool = False
    checked: bool = True
    since_default: bool = False

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` is refused for field ``name``, or None when it is allowed."""
        if value is None or isinstance(value, bool):
            return None
        if self.choices and not self.open and value not in self.choices:
            return f"{name}={value!r}: one of {self.choices}"
        if self.positive and not value > 0:
            return f"{name}={value} must be {self.rule or 'positive'}"
        if self.min is not None and not value >= self.min:
            return f"{name}={value} must be {self.rule or f'at least {self.min:g}'}"
        return None

    def excess(self, name: str, value: Any) -> str | None:
        """Why ``value`` is above :attr:`most` for field ``name``, or None when it is not: a
        size beyond what this tool would ever write (a file from elsewhere)."""
        if value is None or isinstance(value, bool) or self.most is None:
            return None
        if value <= self.most:
            return None
        unit = f" {self.unit}" if self.unit else ""
        return f"{name}={value}: at most {self.most}{unit}"

    def bounds(self) -> tuple[float | None, float | None]:
        """(lowest, highest) the CLI flag takes: ``least`` or ``min``, and ``most``."""
        return (self.min if self.least is None else self.least), self.most

    def widget_bounds(self) -> tuple[float | None, float | None]:
        """(lowest, highest) the page's number widget offers: ``low`` or ``min``, and ``max``."""
        return (self.min if self.low is None else self.low), self.max


def option(default: Any, **described: Any) -> Any:
    """A dataclass field with its :class:`Option` (``described``) in the metadata."""
    return dataclasses.field(default=default, metadata={"option": Option(**described)})


def options_of(config: type) -> dict[str, Option]:
    """Field name -> :class:`Option` of a dataclass whose fields were made by :func:`option`."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(config)}


def check_options(config: Any) -> None:
    """ValueError naming the first field of a dataclass made with :func:`option` whose value
    its :class:`Option` refuses (its lower bound or choices; :meth:`Option.excess` is the
    caller's, which says what its caps guard)."""
    for field in dataclasses.fields(config):
        described = field.metadata["option"]
        if not described.checked:
            continue
        problem = described.problem(field.name, getattr(config, field.name))
        if problem:
            raise ValueError(problem)


def excesses(config: Any) -> list[tuple[bool, str]]:
    """(ok, message) for each field of ``config`` with a :attr:`Option.most`, in field order."""
    out = []
    for field in dataclasses.fields(config):
        described = field.metadata["option"]
        if described.checked and described.most is not None:
            message = described.excess(field.name, getattr(config, field.name))
            out.append((message is None, message or ""))
    return out


def known_fields(config: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of ``config`` (a stored config of a newer or
    older version keeps what this one knows)."""
    known = {f.name for f in dataclasses.fields(config)}
    return {k: v for k, v in data.items() if k in known}


def stored(config: Any) -> dict[str, Any]:
    """``dataclasses.asdict(config)`` without the fields marked ``since_default`` that hold
    their default: what a config writes, so a field added later changes no older file."""
    data = dataclasses.asdict(config)
    for field in dataclasses.fields(config):
        if field.metadata["option"].since_default and data[field.name] == field.default:
            del data[field.name]
    return data


def setting_name(field: str, described: Option) -> str:
    """The name a person sets field ``field`` by: its Option's ``name``, else the field's."""
    return described.name or field


def flag(name: str) -> str:
    """The CLI flag of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")
