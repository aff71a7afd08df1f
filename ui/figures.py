"""Plotly figures for the pages: spectrograms, waveforms, loss curves, the latent map.

Pure functions from arrays to figures (no Streamlit), so they are easy to test and reuse.
Spectrogram panels share one colour scale: the features are already in [0, 1] (0 = the
floor ``-top_db`` dB, 1 = full scale), so the same colour means the same level everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, sequential
from plotly.subplots import make_subplots

from ui.safe_text import chart
from vae.audio.features import FeatureConfig
from vae.evaluation.distribution import ratio
from vae.model.losses import Losses

# Magma, written as rgb(): Streamlit's frontend swaps colours "#000001".."#0000NN" for its
# theme colours, and Magma's first stop is "#000004", so silence drew pink.
MAGMA = sequential.Magma
LEVELS = [
    [i / (len(MAGMA) - 1), "rgb({}, {}, {})".format(*hex_to_rgb(c))] for i, c in enumerate(MAGMA)
]
# The route's numbers are read over a dense map: each sits inside a white disc ringed in
# the text colour, drawn above the clips' points (the trace comes after theirs).
INK = "#262730"  # Streamlit's text colour
ROUTE_DISC = dict(size=20, color="white", opacity=1, line=dict(width=2, color=INK))
# metrics.jsonl key -> its panel (title, log axis or unit): one panel per term of Losses.
LOSS_TERMS = Losses.described()
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _axes(cfg: FeatureConfig, bins: int, frames: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Frame times (s), row centres (Hz, or mel band numbers: the feature type's) and the
    y-axis title."""
    times = np.arange(frames) * cfg.hop_length / cfg.sample_rate
    centres, title = cfg.feature_type.axis(cfg)
    return times, centres[:bins], title


def _db(cfg: FeatureConfig) -> str:
    return f"0 = -{cfg.top_db:g} dB, 1 = full scale"


# A panel's title above its middle, as make_subplots writes subplot_titles.
PANEL_TITLE = dict(
    y=1.0, xref="paper", yref="paper", xanchor="center", yanchor="bottom", showarrow=False,
    font=dict(size=16),
)  # fmt: skip


def _panels(count: int, spacing: float = 0.03) -> list[tuple[float, float]]:
    """The x domains of ``count`` panels side by side, ``spacing`` apart (as make_subplots
    lays out one row)."""
    width = (1 - spacing * (count - 1)) / count
    return [(c * (width + spacing), c * (width + spacing) + width) for c in range(count)]


def spectrograms(
    panels: Sequence[tuple[str, np.ndarray]],
    cfg: FeatureConfig,
    difference: bool = False,
    height: int = 280,
) -> go.Figure:
    """Spectrograms (bins, frames) side by side on one colour scale.

    With ``difference`` the last panel is the first minus the second on a diverging scale:
    blue where the second (a reconstruction) is too quiet, red where it is too loud.

    Built as one layout of panel axes and title annotations, not with ``make_subplots``:
    the same figure at a small part of the cost (benchmarks/figures_cost.py), which a page
    pays on every rerun.
    """
    maps = [(chart(t), np.asarray(f, dtype=np.float32)) for t, f in panels]  # (bins, frames)
    traces = [
        dict(coloraxis="coloraxis", hovertemplate="%{x:.2f} s, %{y:.0f}: %{z:.2f}<extra></extra>")
        for _ in maps
    ]
    if difference:
        maps.append(("difference (1st - 2nd)", maps[0][1] - maps[1][1]))
        traces.append(dict(coloraxis="coloraxis2"))
    layout: dict = dict(
        coloraxis=dict(colorscale=LEVELS, cmin=0, cmax=1, colorbar=dict(title="level")),
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        meta={"scale": _db(cfg)},
        annotations=[],
    )
    if difference:
        layout["coloraxis2"] = dict(
            colorscale="RdBu", cmid=0, cmin=-1, cmax=1, colorbar=dict(x=1.08, title="diff")
        )
    for col, ((title, feats), trace, (left, right)) in enumerate(
        zip(maps, traces, _panels(len(maps)), strict=True), start=1
    ):
        x, y, unit = _axes(cfg, *feats.shape)
        n = "" if col == 1 else str(col)
        trace.update(z=feats, x=x, y=y, xaxis=f"x{n}", yaxis=f"y{n}")
        layout[f"xaxis{n}"] = dict(anchor=f"y{n}", domain=[left, right], title="s")
        layout[f"yaxis{n}"] = dict(anchor=f"x{n}", domain=[0.0, 1.0])
        if col > 1:  # one frequency axis: the panels pan and zoom together
            layout[f"yaxis{n}"].update(matches="y", showticklabels=False)
        else:
            layout["yaxis"]["title"] = unit
        layout["annotations"].append(dict(PANEL_TITLE, text=title, x=(left + right) / 2))
    return go.Figure(data=[go.Heatmap(**trace) for trace in traces], layout=layout)


def waveform(wave: np.ndarray, sample_rate: int, height: int = 160) -> go.Figure:
    """A waveform (samples,) against time, decimated to at most ~4,000 points."""
    wave = np.asarray(wave, dtype=np.float32)
    step = max(1, len(wave) // 4000)
    t = np.arange(0, len(wave), step) / sample_rate
    fig = go.Figure(go.Scatter(x=t, y=wave[::step], mode="lines", line=dict(width=1)))
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title="s",
        yaxis=dict(range=[-1, 1]),
    )
    return fig


def _epoch_line(
    records: Sequence[dict], field: str, name: str, colour: str, group: str, legend: bool
) -> go.Scatter:
    """One figure of metrics.jsonl records against their epoch (records without it skipped)."""
    pts = [(r["epoch"], r.get(field)) for r in records]
    pts = [(e, v) for e, v in pts if v is not None]
    return go.Scatter(
        x=[e for e, _ in pts],
        y=[v for _, v in pts],
        name=name,
        mode="lines+markers",
        line=dict(color=colour),
        legendgroup=group,
        showlegend=legend,
    )


def loss_curves(records: Sequence[dict]) -> go.Figure:
    """Each loss term (total, reconstruction and KL: the fields of
    :class:`vae.model.losses.Losses`) per epoch for train and validation, one panel each.

    ``records`` are metrics.jsonl lines; epoch lines draw the curves, step lines (if any)
    draw a faint train trace so the chart moves within the first epoch too.
    """
    titles = [term["title"] for term in LOSS_TERMS.values()]
    fig = make_subplots(rows=1, cols=len(LOSS_TERMS), subplot_titles=titles)
    epochs = [r for r in records if r.get("event") == "epoch"]
    steps = [r for r in records if r.get("event") == "step"]
    per_epoch = max((r.get("batch", 0) for r in steps), default=1) or 1
    for col, (key, term) in enumerate(LOSS_TERMS.items(), start=1):
        if steps:
            x = [(r["epoch"] - 1) + r["batch"] / per_epoch for r in steps]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[r[key] for r in steps],
                    name="train (steps)",
                    mode="lines",
                    line=dict(color=COLOURS[0], width=1),
                    opacity=0.35,
                    legendgroup="steps",
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        for split, colour in (("train", COLOURS[0]), ("val", COLOURS[1])):
            trace = _epoch_line(epochs, f"{split}_{key}", split, colour, split, col == 1)
            fig.add_trace(trace, row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
        # Log axes for the terms that fall by orders of magnitude, labelled as such, with
        # ticks at 1, 2, 5 per decade (plotly's default prints "9, 8 ... 2" between decades).
        if term["log"]:
            fig.update_yaxes(
                type="log", dtick="D2", tickformat="~s", title_text="log scale", row=1, col=col
            )
        else:
            fig.update_yaxes(title_text=term["unit"], row=1, col=col)
    # The legend sits under the panels, where the plot toolbar cannot cover it.
    fig.update_layout(
        height=320,
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.25, x=0),
    )
    return fig


JUDGE_PANELS = (
    ("judged correctly", "accuracy", ".0%"),
    ("Fréchet distance to train clips (lower is better)", "frechet", ""),
)
JUDGE_SETS = (("samples", "samples", COLOURS[2]), ("reconstructed", "reconstructions", COLOURS[4]))


def judge_scores(records: Sequence[dict]) -> go.Figure:
    """The judge's scorings during training ("judge" lines of metrics.jsonl): accuracy on
    prior samples and on reconstructions, and each set's Fréchet distance, per epoch; real
    clips scored the same way are drawn dashed (the floor), the best epoch as a star."""
    lines = [r for r in records if r.get("event") == "judge"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for title, _, _ in JUDGE_PANELS])
    for col, (_, figure, fmt) in enumerate(JUDGE_PANELS, start=1):
        for key, name, colour in JUDGE_SETS:
            trace = _epoch_line(lines, f"{key}_{figure}", name, colour, key, col == 1)
            fig.add_trace(trace, row=1, col=col)
        real = [r.get(f"real_{figure}") for r in lines]
        if lines and real[-1] is not None:
            fig.add_hline(
                y=real[-1], line=dict(color=COLOURS[7], dash="dash"), row=1, col=col,
                annotation_text="real clips", annotation_position="bottom right",
            )  # fmt: skip
        fig.update_xaxes(title_text="epoch", row=1, col=col)
        fig.update_yaxes(tickformat=fmt, row=1, col=col)
    best = [r for r in lines if r.get("epoch") == (lines[-1].get("best_epoch") if lines else None)]
    if best:
        fig.add_trace(
            go.Scatter(
                x=[best[0]["epoch"]],
                y=[best[0]["score"]],
                name=f"best (epoch {best[0]['epoch']})",
                mode="markers",
                marker=dict(symbol="star", size=14, color=COLOURS[3]),
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(range=[0, 1.05], row=1, col=1)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10))
    return fig


SHARPEN_PANELS = (  # title, (metrics.jsonl key, trace name, colour) of each curve
    (
        "critic and adversarial (hinge)",
        (("critic", "critic", 3), ("adversarial", "adversarial", 5)),
    ),
    ("feature matching", (("features", "features", 6),)),
    ("spectral distance per bin", (("spectral", "train", 0), ("val_spectral", "val", 1))),
)


def sharpen_curves(records: Sequence[dict]) -> go.Figure:
    """Stage 2's losses per stage epoch ("sharpen" lines of metrics.jsonl): the critic's
    hinge loss beside the decoder's adversarial term, feature matching, and the spectral
    distance of train and validation clips. The x axis is the epoch counting on from stage 1
    (the loss chart's and the judge's axis); hovering shows the stage epoch."""
    lines = [r for r in records if r.get("event") == "sharpen"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for title, _ in SHARPEN_PANELS])
    for col, (_, terms) in enumerate(SHARPEN_PANELS, start=1):
        for key, name, colour in terms:
            trace = _epoch_line(lines, key, name, COLOURS[colour], name, True)
            stage = [r.get("stage_epoch") for r in lines if r.get(key) is not None]
            hover = f"{name} %{{y:.4g}}, stage epoch %{{customdata}}<extra></extra>"
            fig.add_trace(trace.update(customdata=stage, hovertemplate=hover), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    legend = dict(orientation="h", yanchor="top", y=-0.25, x=0)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), legend=legend)
    return fig


def _clip_traces(coords: np.ndarray, ids: np.ndarray, groups: np.ndarray) -> list[dict]:
    """The map's clip points, one trace per group, written in plotly's own form so that they
    join the figure unvalidated: validating thousands of points was most of the map's cost
    (benchmarks/figures_cost.py)."""
    traces = []
    for i, group in enumerate(sorted(set(groups.tolist()), key=natural_key)):
        mask = groups == group
        traces.append(
            dict(
                type="scatter",
                mode="markers",
                name=chart(group),
                x=coords[mask, 0],
                y=coords[mask, 1],
                customdata=ids[mask],
                text=np.array([chart(clip_id) for clip_id in ids[mask].tolist()]),
                marker=dict(size=7, color=COLOURS[i % len(COLOURS)], opacity=0.75),
                hovertemplate="%{text}<extra>" + chart(group) + "</extra>",
            )
        )
    return traces


def latent_map(
    coords: np.ndarray,
    ids: Sequence[str],
    groups: Sequence[str],
    colour_title: str,
    selected: Sequence[str] = (),
    extra: Sequence[tuple[str, np.ndarray]] = (),
    path: np.ndarray | None = None,
    height: int = 520,
    route: Sequence[str] = (),
) -> go.Figure:
    """Scatter of 2-D latent coordinates (N, 2), one trace per group for the legend.

    Every point carries its clip id in ``customdata`` (raw), so a click names the clip whatever
    trace it is in; ids and names are drawn escaped. ``selected`` ids are ringed; ``extra``
    points (name, (2,)) such as an uploaded clip are drawn as stars; ``path`` (K, 2) draws an
    interpolation path, or with ``route`` (K names, ids or extra names) a route through those
    points, numbered in order.

    The clips' traces (:func:`_clip_traces`) join the figure unvalidated (they are written in
    plotly's own form, and validating 3,000 points cost more than drawing them); only the
    moving markers are validated.
    """
    coords = np.asarray(coords, dtype=np.float32)
    ids, groups = np.asarray(ids), np.asarray([str(g) for g in groups])
    data: list = _clip_traces(coords, ids, groups)
    if len(selected):
        where = {clip_id: i for i, clip_id in enumerate(ids.tolist())}
        rows = [where[s] for s in selected if s in where]
        data.append(
            go.Scatter(
                x=coords[rows, 0],
                y=coords[rows, 1],
                mode="markers+text",
                name="selected",
                text=[chart(ids[r]) for r in rows],
                textposition="top center",
                customdata=ids[rows],
                marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=2, color="black")),
            )
        )
    if path is not None and len(path):
        data.append(
            go.Scatter(
                x=path[:, 0],
                y=path[:, 1],
                mode="lines+markers+text" if len(route) else "lines+markers",
                name="route" if len(route) else "path",
                line=dict(color="black", dash="dot"),
                marker=ROUTE_DISC if len(route) else dict(size=5, color="black"),
                # a click on a route point names its clip, so it can be added again
                customdata=list(route) if len(route) else None,
                text=[str(i) for i in range(1, len(route) + 1)] if len(route) else None,
                textposition="middle center",  # the number inside its disc
                textfont=dict(size=12, color=INK, weight="bold"),
            )
        )
    for name, point in extra:
        data.append(
            go.Scatter(
                x=[point[0]],
                y=[point[1]],
                mode="markers+text",
                name=chart(name),
                text=[chart(name)],
                textposition="bottom center",
                customdata=[name],
                marker=dict(
                    size=18, symbol="star", color="gold", line=dict(width=1, color="black")
                ),
            )
        )
    fig = go.Figure(data=data, _validate=False)  # the moving markers were validated above
    # Validation back on for what comes next (this layout, the page's axis titles): plotly's
    # own way to add trusted properties (see its _initialize_layout_template).
    fig._validate = fig.layout._validate = True
    fig.update_layout(
        height=height,
        legend_title_text=colour_title,
        dragmode="pan",
        margin=dict(l=10, r=10, t=40, b=10),  # room above for the toolbar: not on the legend
        clickmode="event+select",
    )
    return fig


def natural_key(text: str) -> tuple:
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


DISTRIBUTION_SETS = (
    ("real", "real clips (val)"),
    ("phase_copies", "phase copies of them"),
    ("reconstructed", "reconstructions"),
    ("samples", "prior samples"),
)


def distribution_rows(section: dict) -> list[dict[str, str]]:
    """The evaluate report's distribution section as table rows: set, Fréchet distance,
    inception score, and the Fréchet distance over that of the phase copies."""
    phase = (section.get("phase_copies") or {}).get("frechet")
    rows = []
    for key, name in DISTRIBUTION_SETS:
        figures = section.get(key)
        if not figures:
            continue
        times = ratio(figures["frechet"], phase)
        rows.append(
            {
                "set": f"{name}, {figures['clips']} clips",
                "Fréchet distance": f"{figures['frechet']:.2f}",
                "inception score": f"{figures['inception_score']:.2f}",
                "ratio to the phase copies": "" if times is None else f"{times:.2f}x",
            }
        )
    return rows


def _shown(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def realism_table(rows: Sequence[dict]) -> list[dict[str, str]]:
    """``vae.evaluation.evaluate.realism_rows`` as table rows of text, a dash where a figure was not
    measured (no judge, or a report older than the figure)."""
    names = dict(DISTRIBUTION_SETS)
    return [
        {
            "set": f"{names[row['set']]}, {row['clips']} clips",
            "Fréchet distance": _shown(row["frechet"], ".2f"),
            "x phase copies": _shown(row["frechet_vs_phase"], ".2f"),
            "fine structure (dB)": _shown(row["fine_structure_db"], ".2f"),
            "x real clips": _shown(row["fine_structure_vs_real"], ".2f"),
            "inception score": _shown(row["inception_score"], ".2f"),
        }
        for row in rows
    ]
