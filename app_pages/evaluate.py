"""Evaluate: how good is the current checkpoint, in numbers a listener would agree with?

Realism first: how far each set (real clips, their phase copies, reconstructions, prior
samples) is from the real clips as a whole, by a judge (a classifier trained on real clips,
listening to audio), and how sharp its spectrum is (fine structure). Then accuracy:
reconstruction distances after the audio round trip, beside Griffin-Lim alone, and what the
judge names each clip. Same figures as ``python -m vae evaluate``.
"""

import json
from pathlib import Path

import streamlit as st

from ui import cache, evaluate_figures, figures, pairing, state, widgets
from ui.safe_text import code, md
from vae.evaluation.evaluate import evaluate_reconstruction, evaluate_with_judge, realism_rows
from vae.evaluation.judge import CONFIG_FILE as JUDGE_CONFIG
from vae.evaluation.judge import Judge
from vae.evaluation.judge_training import JudgeTraining, train_judge
from vae.storage.files import read_json
from vae.workspace import JUDGE_ROOT, list_judges

REPORTS = "evaluate-reports"  # checkpoint path -> last report, for this session
JUDGE = "evaluate-judge"  # the judge picked (its folder)
EVALUATION_FILE = "evaluation.json"  # written beside a shipped checkpoint by its build script


def _stored_report(checkpoint: Path, epoch: int) -> dict | None:
    """The checkpoint's own evaluation.json, when it has a readable one of this epoch."""
    try:
        report = read_json(checkpoint / EVALUATION_FILE)
    except (OSError, ValueError):  # too big, too deep, torn: evaluate anew instead
        return None
    return report if isinstance(report, dict) and report.get("epoch") == epoch else None


def _judge_labels(folder: Path) -> list[str]:
    """The labels a judge names, from its config (none when unreadable: not offered)."""
    try:
        names = read_json(Path(folder) / JUDGE_CONFIG).get("label_names", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _shared_clips(checkpoint: Path, ds) -> int | None:
    """How many of the dataset's clip ids the checkpoint has codes for (None: unknown)."""
    try:
        own = {str(i) for i in cache.latents(checkpoint)["ids"]}
    except widgets.USER_ERRORS:  # no latents.npz, or a refused one: the count is unknown
        return None
    return sum(clip_id in own for clip_id in ds.ids)


st.title("Evaluate")
st.caption(
    "First, does it sound real: each set as a whole against real clips, and how sharp its "
    "spectrum is. Then accuracy: reconstructions against their originals after decode -> "
    "Griffin-Lim -> re-analysis, and a judge (a small classifier trained on real clips): is "
    "a generated 7 heard as a 7?"
)
checkpoint = state.require_checkpoint()
with widgets.user_errors():  # every read of the checkpoint's files: one line, no traceback
    synth = cache.synthesiser(checkpoint)
    ds = cache.companion_dataset(checkpoint, synth)
stored = _stored_report(checkpoint, synth.checkpoint.epoch)
mismatch = pairing.label_line(synth, ds) if ds is not None else None
if mismatch is not None:  # its clips cannot be encoded with their labels: say so, once
    st.info(mismatch + (" Below: the figures stored with the checkpoint." if stored else ""))
    if stored is None:
        st.stop()
    ds = None
elif ds is None:
    st.info(
        "No dataset with this checkpoint's features is on disk: preprocess one (Dataset page) "
        "to evaluate anew; the judge needs its validation clips."
        + (" Below: the figures stored with the checkpoint." if stored else "")
    )
    if stored is None:
        st.stop()
if ds is not None:
    seen = pairing.seen_line(synth, ds, _shared_clips(checkpoint, ds))
    if seen is not None:
        st.warning(seen)
    # a judge of other labels than the dataset's has no clip to name ("no clips in split")
    every_judge = list_judges()
    judges = [j for j in every_judge if set(_judge_labels(j.path)) & set(ds.label_names)]
    judge_paths = [str(j.path) for j in judges]
    if st.session_state.get(JUDGE) not in judge_paths:  # none yet, or one just trained
        st.session_state[JUDGE] = judge_paths[0] if judge_paths else None
    left, right = st.columns([2, 1])
    with left:
        chosen = st.selectbox(
            "Judge",
            judge_paths,
            key=JUDGE,
            placeholder="no judge yet: train one on the right",
            format_func=lambda p: f"{p} ({next(j.summary for j in judges if str(j.path) == p)})",
        )
        samples = st.number_input(
            "Prior samples per label",
            0,
            200,
            20,
            key="evaluate-samples",
            help="clips a conditional model generates for each label for the judge to name",
        )
    with right:
        target = JUDGE_ROOT / Path(ds.root).name
        st.caption(f"A judge learns the labels of {code(ds.root)} from its training split.")
        if len(judges) < len(every_judge):
            st.caption(
                f"{len(every_judge) - len(judges)} judge(s) of other labels are not offered: "
                "they have no clip of this dataset to name."
            )
        if st.button("Train a judge", key="evaluate-train-judge", disabled=len(ds.label_names) < 2):
            with widgets.user_errors():
                update = widgets.progress_bar("Training the judge: epoch")
                done = train_judge(
                    ds, target, JudgeTraining(), progress=lambda e: update(e["epoch"], e["epochs"])
                )
            st.success(
                f"Judge saved to {code(target)}: {done['val_accuracy']:.1%} on validation clips."
            )
            st.rerun()

    if st.button("Run the evaluation", key="evaluate-run", type="primary"):
        with widgets.user_errors():
            report = evaluate_reconstruction(
                synth, ds, progress=widgets.progress_bar("Reconstructing:")
            )
            if chosen:
                judge = Judge.load(chosen)
                report["judge"] = evaluate_with_judge(
                    synth,
                    ds,
                    judge,
                    samples_per_label=int(samples),
                    progress=widgets.progress_bar("Judging:"),
                )
                report["judge"]["path"] = chosen
            report["checkpoint"], report["epoch"] = str(checkpoint), synth.checkpoint.epoch
            st.session_state.setdefault(REPORTS, {})[str(checkpoint)] = report

report = st.session_state.get(REPORTS, {}).get(str(checkpoint)) or stored
if report is None:
    st.info("Press **Run the evaluation** (about 10 s per 300 validation clips on 2 cores).")
    st.stop()
if report is stored:
    again = (
        "**Run the evaluation** recomputes them"
        if ds is not None
        else "with its dataset preprocessed, this page can recompute them"
    )
    st.caption(
        f"Figures stored with the checkpoint (`{EVALUATION_FILE}`, made when it was built); "
        f"{again}."
    )

st.subheader(md(f"{report['clips']} validation clips, checkpoint epoch {report['epoch']}"))
verdicts = report.get("judge")
dist = (verdicts or {}).get("distribution")
st.markdown("**Realism: how close does each set sound to real clips?**")
rows = realism_rows(report)
if rows:
    st.table(figures.realism_table(rows))
st.caption(
    f"Fréchet distance between the judge's embeddings of a set and of "
    f"{dist['reference']['clips']} real training clips (lower is closer; real validation "
    "clips give the floor); over the phase copies', what the model adds to the phase "
    "method's own loss. Inception score: how clearly and evenly the judge hears the labels "
    f"(at most {len(verdicts['labels'])})."
    if dist
    else "Fréchet distance and inception score need a judge (below)."
)
st.caption(
    "Fine structure: the mean step in dB between neighbouring frequency bins over a clip's "
    "loud frames; harmonics and formant edges make it large, a smeared spectrum small. Over "
    "the real clips', near 1 is as sharp as real."
    + (
        ""
        if any(row["fine_structure_db"] is not None for row in rows)
        else " This report predates it: run the evaluation again."
    )
)

st.markdown("**Accuracy: how close is each reconstruction, and what does the judge hear?**")
m, g = report["model"], report["griffin_lim_only"]
cols = st.columns(4)
cols[0].metric("LSD, model", f"{m['lsd_db']['median']:.2f} dB")
cols[1].metric("SC, model", f"{m['sc']['median']:.3f}")
cols[2].metric("LSD, Griffin-Lim alone", f"{g['lsd_db']['median']:.2f} dB")
cols[3].metric("SC, Griffin-Lim alone", f"{g['sc']['median']:.3f}")
if report.get("vocoder_only"):  # the checkpoint's vocoder on the same real clips
    v, cols = report["vocoder_only"], st.columns(4)
    cols[2].metric("LSD, vocoder alone", f"{v['lsd_db']['median']:.2f} dB")
    cols[3].metric("SC, vocoder alone", f"{v['sc']['median']:.3f}")
st.caption(
    f"The model's figures are heard through {md(report.get('phase', 'griffin-lim'))}; "
    "'alone' is the phase method on the real clips' own features, the floor a perfect "
    "decoder would reach."
)
if verdicts:
    parts = [("real clips", verdicts["real"]), ("reconstructions", verdicts["reconstructed"])]
    if verdicts["samples"]:
        parts.append(("prior samples", verdicts["samples"]))
    cols = st.columns(len(parts) + (1 if verdicts["samples"] else 0))
    for col, (name, part) in zip(cols, parts, strict=False):
        col.metric(f"Judge on {name}", f"{part['accuracy']:.1%}")
    if verdicts["samples"]:
        cols[-1].metric(
            "Diversity of samples",
            f"{verdicts['samples']['diversity']['mean']:.2f}",
            help="spread of a label's samples over the spread of its real clips (1 = as varied)",
        )
    st.plotly_chart(
        evaluate_figures.label_accuracy([(name, part["per_label"]) for name, part in parts]),
        key="evaluate-bars",
    )
    which = st.radio(
        "Confusion matrix of", [n for n, _ in parts], horizontal=True, key="evaluate-which"
    )
    part = dict(parts)[which]
    st.plotly_chart(
        evaluate_figures.confusion(part["confusion"], verdicts["labels"], which),
        key="evaluate-confusion",
    )
else:
    st.info("Choose or train a judge to see how the clips are heard.")
st.download_button(
    "Download the report (JSON)",
    json.dumps(report, indent=2),
    file_name=f"evaluation-{Path(checkpoint).name}-epoch{report['epoch']}.json",
    mime="application/json",
    key="evaluate-download",
)
