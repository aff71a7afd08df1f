"""The route on Explore's latent map: its numbers stay legible over a dense map (issue 24
item 7: small black numbers beside small black dots were lost among the clips' points)."""

from __future__ import annotations

import numpy as np
from plotly.colors import hex_to_rgb, unlabel_rgb

from ui import figures


def _rgb(colour: str) -> tuple[float, ...]:
    """A plotly colour ("#rrggbb", "rgb(...)" or a few names) as (r, g, b) 0-255."""
    named = {"white": (255, 255, 255), "black": (0, 0, 0)}
    if colour in named:
        return named[colour]
    return hex_to_rgb(colour) if colour.startswith("#") else unlabel_rgb(colour)


def _contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21; 4.5 is legible body text)."""

    def luminance(colour: str) -> float:
        c = np.array(_rgb(colour), dtype=float) / 255
        c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(c @ [0.2126, 0.7152, 0.0722])

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_route_numbers_sit_in_large_ringed_discs_above_the_points():
    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(3000)]  # as dense as the FSDD map
    route = ["c1", "c2", "c3", "c4"]
    fig = figures.latent_map(
        rng.normal(size=(3000, 2)),
        ids,
        [str(i % 10) for i in range(3000)],
        "label",
        path=rng.normal(size=(4, 2)),
        route=route,
    ).to_dict()
    names = [t["name"] for t in fig["data"]]
    trace = fig["data"][names.index("route")]
    assert names.index("route") > max(names.index(str(d)) for d in range(10))  # drawn on top
    assert "markers" in trace["mode"] and "text" in trace["mode"]
    assert trace["text"] == ["1", "2", "3", "4"] and list(trace["customdata"]) == route
    marker, font = trace["marker"], trace["textfont"]
    assert marker["size"] >= 16 and marker.get("opacity", 1) == 1
    assert trace["textposition"] == "middle center"  # the number inside its disc
    assert font["size"] >= 12 and font["weight"] == "bold"
    assert _contrast(font["color"], marker["color"]) >= 7  # number on its disc
    assert marker["line"]["width"] >= 1.5
    assert _contrast(marker["line"]["color"], marker["color"]) >= 7  # the ring on the disc


def test_an_interpolation_path_keeps_its_small_dots():
    fig = figures.latent_map(
        np.zeros((3, 2)), ["a", "b", "c"], ["x"] * 3, "label", path=np.zeros((5, 2))
    ).to_dict()
    path = [t for t in fig["data"] if t["name"] == "path"][0]
    assert path["marker"]["size"] <= 6 and "text" not in path["mode"]
