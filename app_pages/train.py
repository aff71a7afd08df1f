"""Train: set a model up, start training in the background, watch it learn, stop or resume;
then sharpen its decoder (stage 2) and watch that stage's losses the same way.

Training runs in its own process (``vae.jobs.runner`` starts ``python -m vae train``, or for stage 2
``python -m vae sharpen``); this page only starts, stops and follows it through the checkpoint
folder. So a reloaded page (a new session) re-attaches to a run in progress, and a crashed run
leaves the app standing.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import cache, export_panel, figures, state, widgets
from ui import train_settings as settings
from ui.safe_text import code, md
from vae.jobs import runner as jobs
from vae.jobs.options import TRAIN_OPTIONS
from vae.jobs.recipes import DEFAULT, RECIPES
from vae.model.checkpoints import BEST_DIR, CONFIG_FILE, has_checkpoint
from vae.synthesis.showcase import reconstruct_showcase
from vae.training.model_options import MODEL_OPTIONS, parse_channels
from vae.workspace import CHECKPOINT_ROOT, folder_name, list_judges

FOLDER = "train-last-folder"  # our own session keys: survive leaving the page
FOLLOW = "train-follow"  # the folder of a run this session saw running, to act when it ends
CLIPS = 3  # fixed validation clips reconstructed after every epoch
POLL_S = 1.0  # the live view rereads the run's files this often while it trains


def _fresh_name(dataset: Path | None) -> str:
    base = f"{dataset.name if dataset else 'model'}-vae"
    names = [base] + [f"{base}-{i}" for i in range(2, 1000)]
    return next(n for n in names if not (CHECKPOINT_ROOT / n).exists())


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "any moment now"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


@st.cache_data(max_entries=16, show_spinner=False)
def _reconstructions(folder: str, data: str, stamp: float) -> tuple:
    """(feature config, epoch, reconstructions) of a few validation clips of different labels
    (``vae.synthesis.showcase``); ``stamp`` (config.json's mtime) makes a new epoch's checkpoint a
    new
    entry."""
    synth = cache.synthesiser(folder)
    clips = reconstruct_showcase(synth, cache.dataset(data), CLIPS)
    return synth.config, synth.checkpoint.epoch, clips


def _progress(run: jobs.TrainingStatus) -> None:
    """The progress of the folder's stage (1: epochs; 2, sharpening: stage epochs), and how
    its last run ended."""
    sharpening, unit = run.stage == "sharpen", "stage epoch" if run.stage == "sharpen" else "epoch"
    text = f"{'Sharpen (stage 2): stage epoch' if sharpening else 'Epoch'} {run.epoch}/"
    text += f"{run.epochs or '?'}"
    if run.batch and run.batches:
        text += f" · batch {run.batch}/{run.batches} of {unit} {run.epoch + 1}"
    if run.running:
        text += f" · ETA {_duration(run.eta)}" if run.eta is not None else " · ETA after a step"
    elif run.seconds_per_epoch:
        text += f" · {run.seconds_per_epoch:.1f} s a{'' if sharpening else 'n'} {unit}"
    st.progress(run.fraction, text=text)
    if run.running:
        st.caption(
            f"{'Sharpening' if sharpening else 'Training'} process {run.pid or '(starting)'} "
            f"writes `{run.folder}`; this view refreshes every {POLL_S:g} s. Closing the tab "
            "does not stop it: Stop does."
        )
    elif run.state == "done":
        done = f"{run.epoch} {unit}{'s' if run.epoch != 1 else ''}"
        did = "Sharpened" if sharpening else "Finished"
        st.success(f"{did} {done}: explore `{run.folder}` on the other pages.")
    elif run.state == "stopped" and not run.saved:
        st.info(
            "Stopped before the first epoch finished, so nothing was saved (a checkpoint is "
            "written at the end of each epoch). Press Start again to train from the beginning."
        )
    elif run.state == "stopped":
        again = "Sharpen epochs" if sharpening else "Epochs"
        button = "Resume sharpening" if sharpening else "Resume"
        # what the Epochs box holds now: when it is already past, Resume works at once
        target = st.session_state.get(settings.SHARPEN_KEYS["epochs"] if sharpening else
                                      settings.KEYS["epochs"])  # fmt: skip
        how = (
            f"press {button} to train on to {unit} {target}"
            if isinstance(target, int) and target > run.epoch
            else f"set {again} above {run.epoch} and press {button}"
        )
        st.info(f"Stopped after {unit} {run.epoch}; its checkpoint is kept. To train on, {how}.")
    elif run.state == "failed":
        st.error(f"{'Sharpening' if sharpening else 'Training'} failed: {md(run.error)}")


def _show_reconstructions(run: jobs.TrainingStatus, data: Path | None) -> None:
    if not has_checkpoint(run.folder) or data is None:
        st.caption("Reconstructions of a few validation clips appear after the first epoch.")
        return
    try:
        stamp = (run.folder / CONFIG_FILE).stat().st_mtime
        cfg, epoch, clips = _reconstructions(str(run.folder), str(data), stamp)
    except widgets.USER_ERRORS as err:  # e.g. another dataset, or a checkpoint mid-swap
        st.warning(f"No reconstructions: {md(err)}")
        return
    st.subheader(f"Reconstructions after epoch {epoch}")
    for i, clip in enumerate(clips):
        panels = [
            (f"original {clip.clip_id}", clip.original),
            ("reconstruction", clip.reconstruction),
        ]
        left, right = st.columns([3, 1])
        left.plotly_chart(figures.spectrograms(panels, cfg, height=220), key=f"train-recon-{i}")
        with right:
            widgets.play(clip.wave, cfg.sample_rate, "original")
            widgets.play(clip.reconstructed_wave, cfg.sample_rate, "reconstruction")


def _show_judge(run: jobs.TrainingStatus) -> None:
    """The judge's scores beside the losses, the best epoch, and whether to stop."""
    last = run.judge
    if last is None:
        return
    st.plotly_chart(figures.judge_scores(run.records), key="train-judge-scores")
    best = last.get("best_epoch")
    if best is None:
        st.caption("The judge has not found a best epoch yet (no finite score).")
        return
    st.caption(
        f"Best epoch by the judge: {md(best)} (Fréchet distance of prior samples "
        f"{last['best_score']:.3g}); {code(run.folder / BEST_DIR)} holds it, "
        f"{code(run.folder)} the last epoch. Scored last at epoch {md(last['epoch'])}."
    )
    if last.get("stale", 0) >= last.get("patience", 3):
        st.info(
            f"Stop now: best/ holds epoch {md(best)}. The judge's score has not improved for "
            f"{md(last['stale'])} evaluations since then, so stopping loses nothing."
        )


def _judge_options(every: int, judge: str | None, resume: bool = False) -> dict:
    """The judge's JobOptions from the widgets: off at 0 (on Resume: the run's own setting,
    as the widgets forget it when the page is left), else a judge is needed."""
    if every and not judge:
        raise ValueError("Judge every N epochs needs a judge: train one on the Evaluate page.")
    if resume and not every:
        return {}
    return {"judge_every": every, "judge": judge if every else None}


def _page_dataset(run: jobs.TrainingStatus, chosen: Path | None) -> tuple[Path | None, bool]:
    """(dataset, whether it is the run's own): the folder's run's dataset, so a reloaded
    page shows what that run trains on rather than the newest dataset; else ``chosen``."""
    if run.data is not None and run.data.is_dir():
        try:
            cache.dataset(run.data)
            return run.data, True
        except widgets.USER_ERRORS:  # no dataset there (a run that failed on it)
            pass
    return chosen, False


def _sharpen_controls(
    run: jobs.TrainingStatus, judges: dict[str, str], trained: jobs.JobOptions | None
) -> tuple[bool, bool, bool]:
    """Stage 2's section: its settings (the folder's own, else the defaults with stage 1's
    judge) and its buttons; returns whether Sharpen, Stop and Resume sharpening were pressed."""
    st.subheader("Sharpen (stage 2)")
    st.caption(
        "Trains the decoder against a spectrogram critic so that reconstructions, samples and "
        "morphs sound real rather than smeared; the encoder and the learned prior stay as they "
        "are, so the map, the sliders and the picks keep their meaning. Sharpens this folder "
        "in place (`python -m vae sharpen`)."
    )
    if run.sharpened:
        st.caption(
            f"`{run.folder.name}` is sharpened ({run.sharpened} stage epochs), so stage 1 cannot "
            "resume here (sharpening left it no optimizer state): sharpen on, or train a new "
            "folder."
        )
    stage1_judge = trained.judge if trained and trained.judge_every else None
    stored = jobs.sharpen_settings(run.folder) or jobs.SharpenOptions(judge=stage1_judge)
    settings.load_sharpen(run.folder.name, stored, settings.sharpen_choices(list(judges)))
    epochs_col, judge_col = st.columns([1, 2])
    settings.sharpen_widget(epochs_col, "epochs")
    if judges:  # scores every stage epoch and keeps the best of either stage in best/
        settings.sharpen_widget(
            judge_col, "judge", [None, *judges],
            format_func=lambda p: "no judge" if p is None else f"{p} ({judges[p]})",
        )  # fmt: skip
    with st.expander("Advanced sharpening parameters"):
        columns = st.columns(3)
        for i, field in enumerate(settings.SHARPEN_ADVANCED):
            settings.sharpen_widget(columns[i % 3], field)
    settings.keep_sharpen()
    begun, sharpening = run.sharpened > 0, run.running and run.stage == "sharpen"
    # fmt: off
    start_col, stop_col, resume_col, _ = st.columns([1, 1, 1, 3])
    start = start_col.button("Sharpen", key="train-sharpen-start", type="primary",
                             disabled=run.running or begun)
    stop = stop_col.button("Stop", key="train-sharpen-stop", disabled=not sharpening)
    resume = resume_col.button("Resume sharpening", key="train-sharpen-resume",
                               disabled=run.running or not begun)
    # fmt: on
    st.caption(
        "Sharpen starts stage 2 on this checkpoint. Stop ends after the batch in hand, keeping "
        "the last finished stage epoch. Resume sharpening goes on up to Sharpen epochs."
    )
    return start, stop, resume


def _sharpen_options(judges: dict[str, str]) -> jobs.SharpenOptions:
    """Stage 2's options from its widgets (the judge only where one is offered)."""
    values = settings.sharpen_given([n for n in settings.SHARPEN_KEYS if n != "judge"])
    judge = st.session_state.get(settings.SHARPEN_KEYS["judge"]) if judges else None
    return jobs.SharpenOptions(**values, judge=judge)


def live(folder: Path, fallback_data: Path | None) -> None:
    """The run's progress, loss curves and reconstructions, reread from disk."""
    run = jobs.status(folder)
    if not run.running and st.session_state.get(FOLLOW) == str(folder):
        st.rerun(scope="app")  # it ended: the full run makes it current and redraws the buttons
    if run.state == "idle" and not run.records:
        st.caption(f"Nothing trained in `{folder}` yet: set the parameters and press Start.")
        return
    _progress(run)
    if not run.running and has_checkpoint(folder):
        export_panel.checkpoint_downloads(folder, "train")  # as in the sidebar's expander
    st.plotly_chart(figures.loss_curves(run.records), key="train-loss")
    if run.stage == "sharpen" or run.sharpened:
        st.caption("Stage 2 (sharpening), its epochs counting on from stage 1's:")
        st.plotly_chart(figures.sharpen_curves(run.records), key="train-sharpen-loss")
    _show_judge(run)
    data = run.data if run.data and run.data.is_dir() else fallback_data
    _show_reconstructions(run, data)


# ------------------------------------------------------------------------------ inputs
dataset = state.current_dataset()
active = jobs.running_under(CHECKPOINT_ROOT)  # found on disk: a new session re-attaches

st.title("Train")
if dataset is None and not active:
    ready = state.current_checkpoint()  # e.g. the shipped one: exported from the sidebar
    st.info(
        "No dataset yet: make one on the **Dataset** page."
        + (f" To download or export {code(ready)}, open **Download / export** in the sidebar."
           if ready else "")
    )  # fmt: skip
    st.stop()

default = st.session_state.get(FOLDER) or (active[0].name if active else _fresh_name(dataset))
name = st.text_input(
    "Checkpoint folder",
    value=default,
    key="train-folder",
    help=f"A folder under {CHECKPOINT_ROOT}/; it is saved after every epoch.",
).strip()
try:
    name = folder_name(name)  # the CLI's rule too: both faces make the same folders
except ValueError as err:
    st.error(md(err))
    st.stop()
st.session_state[FOLDER] = name
folder = CHECKPOINT_ROOT / name
others = [p.name for p in active if p.name != name]
if others:
    st.info(f"Training also runs in {md(', '.join(others))}: type its name above to follow it.")

with widgets.user_errors():  # the folder's files may come from elsewhere: one line
    run = jobs.status(folder)
    saved_settings = jobs.settings(folder)
dataset, own = _page_dataset(run, dataset)
label_names: list[str] = []
if dataset is not None:
    with widgets.user_errors():
        ds = cache.dataset(dataset)
    label_names = ds.label_names
    whose = f" (the one {code(name)} trains on)" if own else ""
    st.caption(f"Dataset {code(dataset)}{whose}: {len(ds)} clips, {len(label_names)} labels.")

judges = {str(j.path): j.summary for j in list_judges()}
choices = settings.choices(list(judges))
settings.restore(settings.widget_values(DEFAULT.options), choices)
settings.load_run(name, saved_settings, choices)
recipes = {recipe.name: recipe.options for recipe in RECIPES.values()}
unseen = [settings.KEYS["judge"]] + ([] if label_names else [settings.KEYS["conditional"]])
st.session_state[settings.RECIPE] = settings.matching(recipes, unseen)  # no recipe sets those
recipe = st.selectbox(
    "Recipe", list(recipes), index=None, key=settings.RECIPE, placeholder="your own settings",
    on_change=settings.choose_recipe, args=(recipes, choices),
    help="Sets the parameters below; change any of them after.",
)  # fmt: skip
if recipe:
    st.caption(RECIPES[recipe].summary)

# Each widget is drawn from its option's description (vae.training.train_config,
# vae.training.model_options).
widget = settings.widget
# fmt: off
with st.expander("Model and training parameters", expanded=not has_checkpoint(folder)):
    model_col, train_col, kl_col = st.columns(3)
    widget(model_col, "size")
    widget(model_col, "latent_dim")
    conditional = bool(label_names) and widget(model_col, "conditional")
    for name in ("epochs", "batch_size", "lr"):
        widget(train_col, name)
    for name in ("beta", "beta_warmup_epochs", "free_bits"):
        widget(kl_col, name)
    channels_text = widget(st, "channels")
    widget(st, "device")
    every_col, judge_col = st.columns([1, 2])
    judge_every = widget(every_col, "judge_every")
    judge = widget(
        judge_col, "judge", list(judges), format_func=lambda p: f"{p} ({judges[p]})",
        placeholder="no judge yet: train one on the Evaluate page", disabled=not judges)
with st.expander("Advanced parameters"):
    columns = st.columns(3)
    for i, name in enumerate(settings.ADVANCED):
        widget(columns[i % 3], name)
settings.keep()

start_col, stop_col, resume_col, _ = st.columns([1, 1, 1, 3])
# No help= on these: Streamlit then draws each button twice, which breaks browser selectors.
again = run.state in ("stopped", "failed") and not run.saved  # nothing to resume: start over
training = run.running and run.stage == "train"
start = start_col.button("Start again" if again else "Start", key="train-start", type="primary",
                         disabled=run.running)
stop = stop_col.button("Stop", key="train-stop", disabled=not training)
resume = resume_col.button("Resume", key="train-resume",
                           disabled=run.running or not has_checkpoint(folder) or run.sharpened > 0)
st.caption("Start trains a new model into the folder. Stop ends after the batch in hand, "
           "keeping the last finished epoch. Resume trains that checkpoint on up to Epochs.")
# fmt: on

# ------------------------------------------------------------------------------ stage 2
sharpen_start = sharpen_resume = False
if has_checkpoint(folder) and not training:  # a finished or stopped stage 1
    sharpen_start, sharpen_stop, sharpen_resume = _sharpen_controls(run, judges, saved_settings)
    stop = stop or sharpen_stop

# ------------------------------------------------------------------------------ work
# Every training option but the judge's (which _judge_options reads), from its widget.
train_options = settings.given([n for n in TRAIN_OPTIONS if n not in ("judge_every", "judge")])
if start:
    with widgets.user_errors(stop=False):
        if dataset is None:
            raise ValueError("No dataset chosen: pick one in the sidebar or make one first.")
        channels = parse_channels(channels_text) if channels_text else None
        model = settings.given([n for n in MODEL_OPTIONS if n not in ("channels", "conditional")])
        judging = _judge_options(int(judge_every), judge)
        options = jobs.JobOptions(conditional=conditional, channels=channels, **model,
                                  **train_options, **judging)  # fmt: skip
        jobs.start(dataset, folder, options)
        st.rerun()  # the buttons and the live view follow the new run
if sharpen_start or sharpen_resume:
    with widgets.user_errors(stop=False):
        data = jobs.checkpoint_dataset(folder) or dataset
        if data is None:
            raise ValueError(f"{folder}: its dataset is gone; pick one in the sidebar.")
        options = _sharpen_options(judges)
        if sharpen_resume and options.epochs <= run.sharpened:
            raise ValueError(
                f"{folder} is sharpened {run.sharpened} stage epochs: set Sharpen epochs above "
                f"{run.sharpened} to sharpen on."
            )
        jobs.start(data, folder, options, resume=sharpen_resume)
        st.rerun()
if stop:
    if jobs.stop(folder) is None:
        st.warning(f"No training runs in `{folder}`.")
    else:
        st.toast("Stopping after the batch in hand...")
if resume:
    with widgets.user_errors(stop=False):
        done = jobs.status(folder).epoch
        if train_options["epochs"] <= done:
            raise ValueError(
                f"{folder} has trained {done} epochs: set Epochs above {done} to train on."
            )
        data = jobs.checkpoint_dataset(folder) or dataset
        if data is None:
            raise ValueError(f"{folder}: its dataset is gone; pick one in the sidebar.")
        judging = _judge_options(int(judge_every), judge, resume=True)
        jobs.start(data, folder, jobs.JobOptions(**train_options, **judging), resume=True)
        st.rerun()

run = jobs.status(folder)
if run.running:
    st.session_state[FOLLOW] = str(folder)
elif st.session_state.get(FOLLOW) == str(folder):  # the run this session followed has ended
    del st.session_state[FOLLOW]
    if has_checkpoint(folder):
        state.select(state.CHECKPOINT, folder)
    st.rerun()  # the sidebar and the buttons show the new state

# ------------------------------------------------------------------------------ render
st.fragment(live, run_every=POLL_S if run.running else None)(folder, dataset)
