"""The Evaluate page's figures: per-label accuracy bars and the confusion matrix.

Labels such as "0".."9" read as numbers, and plotly then draws a number axis ticked every
other label: each axis here is a category axis with a tick on every label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ui.figures import COLOURS, natural_key
from ui.safe_text import chart


def _every_tick(labels: Sequence[str], title: str) -> dict:
    """An axis of labels with a tick on each: labels that read as numbers ("0".."9") made
    plotly draw a number axis ticked every other label (issue 24, item 6)."""
    ticks = list(labels)
    return dict(title=title, type="category", tickmode="array", tickvals=ticks, ticktext=ticks)


def label_accuracy(parts: Sequence[tuple[str, dict[str, float]]]) -> go.Figure:
    """Grouped bars of per-label accuracy: one group per label, one bar per part
    (e.g. real clips, reconstructions, prior samples)."""
    fig = go.Figure()
    every: list[str] = []  # each label once, in order: every one gets a tick
    for i, (name, per_label) in enumerate(parts):
        labels = sorted(per_label, key=natural_key)
        every += [chart(label) for label in labels if chart(label) not in every]
        fig.add_trace(
            go.Bar(
                x=[chart(label) for label in labels],
                y=[per_label[k] for k in labels],
                name=name,
                marker_color=COLOURS[i % len(COLOURS)],
            )
        )
    fig.update_layout(
        barmode="group",
        height=320,
        yaxis=dict(range=[0, 1], tickformat=".0%"),
        xaxis=_every_tick(every, "label"),
        yaxis_title="judged correctly",
        margin=dict(l=10, r=10, t=10, b=10),
    )
    return fig


def confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> go.Figure:
    """A confusion matrix: rows the true (or asked-for) label, columns what the judge heard."""
    z = np.asarray(matrix, dtype=np.float64)
    share = z / np.maximum(z.sum(axis=1, keepdims=True), 1)
    names = [chart(label) for label in labels]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=names,
            y=names,
            text=z.astype(int),
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="share", tickformat=".0%"),
        )
    )
    fig.update_layout(
        title=title,
        height=420,
        xaxis=_every_tick(names, "judged as"),
        yaxis=dict(_every_tick(names, "true label"), autorange="reversed"),
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig
