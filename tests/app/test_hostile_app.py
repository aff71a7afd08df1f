"""Hostile checkpoint files as the app meets them: every model page shows one ``st.error``
naming the file (never a traceback box), the sidebar lists a checkpoint whose config.json is
refused as damaged, the test process's memory stays under a ceiling, and another session on
the good checkpoint goes on as before. The CLI side is ``tests/integration/
test_untrusted_checkpoints.py``; the library's refusals are the limits' own unit tests.

The cases in ``BEFORE_ALLOCATING`` are refused by the library (``vae.storage.limits``: declared npz
shapes, NaN weights, FFT sizes) before anything is allocated; they run under an address-space
limit, so that a missing check fails the test rather than the machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.apptest import open_page

GOOD, BAD = "checkpoints/demo", "checkpoints/bad"
PICKER = "sidebar-checkpoint"
CEILING = 2 << 30  # bytes: the most the test process may grow by while a page reads one
MODEL_PAGES = ("explore", "interpolate", "synthesise", "evaluate")
LATENT_PAGES = ("explore", "interpolate", "synthesise")  # Evaluate never reads latents.npz


# ------------------------------------------------------------------------------ tamperings


def _deep_config(ckpt: Path) -> None:
    (ckpt / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    (ckpt / "model.pt").write_bytes(b"")


def _edit_config(ckpt: Path, edit: Callable[[dict], None]) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    edit(config)
    (ckpt / "config.json").write_text(json.dumps(config))


def _huge_fft(ckpt: Path) -> None:
    def edit(config: dict) -> None:
        config["feature_config"].update(n_fft=2**30, clip_samples=2**30)

    _edit_config(ckpt, edit)


def _million_labels(ckpt: Path) -> None:
    def edit(config: dict) -> None:
        config["label_names"] = [str(i) for i in range(1_000_000)]

    _edit_config(ckpt, edit)


def _nan_weights(ckpt: Path) -> None:
    state = torch.load(ckpt / "model.pt", weights_only=True)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    torch.save(state, ckpt / "model.pt")


def _latents(**replace: object) -> Callable[[Path], None]:
    """Rewrite latents.npz with some of its arrays replaced."""

    def tamper(ckpt: Path) -> None:
        with np.load(ckpt / "latents.npz") as data:
            arrays = {k: data[k] for k in data.files}
        for key, value in replace.items():
            arrays[key] = value(arrays) if callable(value) else value
        np.savez(ckpt / "latents.npz", **arrays)

    return tamper


def _object_latents(ckpt: Path) -> None:
    with np.load(ckpt / "latents.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["means"] = np.array([object()] * len(arrays["ids"]), dtype=object)
    np.savez(ckpt / "latents.npz", **arrays)  # pickled: a reader must never unpickle it


def _npy_member(zf: zipfile.ZipFile, name: str, shape: tuple, dtype: str, zeros: int) -> None:
    """A .npy member declaring ``shape`` of ``dtype``, its ``zeros`` data bytes deflated."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    with zf.open(name, "w", force_zip64=True) as member:
        member.write(header.getvalue())  # the magic string, then the header
        chunk = bytes(1 << 20)
        for _ in range(zeros >> 20):
            member.write(chunk)


def _huge_latents(ckpt: Path) -> None:
    """A ~0.5 MB latents.npz declaring (2**23, 16) float32 zeros (512 MiB unpacked)."""
    rows = 2**23
    with zipfile.ZipFile(ckpt / "latents.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        _npy_member(zf, "means.npy", (rows, 16), "<f4", rows * 16 * 4)
        _npy_member(zf, "labels.npy", (rows,), "<i8", rows * 8)
        _npy_member(zf, "ids.npy", (rows,), "<U1", rows * 4)


def _on_latents(damaged: bool = True, **replace: Callable) -> tuple:
    return (_latents(**replace), "latents.npz", LATENT_PAGES, damaged)


# name: (tamper, file named in the error, pages that read the file, sidebar says damaged:
# config.json refused, or latents.npz's declared shapes; NaN values are refused on reading)
CASES: dict[str, tuple[Callable[[Path], None], str, tuple[str, ...], bool]] = {
    "nested-config": (_deep_config, "config.json", MODEL_PAGES, True),
    "object-latents": (_object_latents, "latents.npz", LATENT_PAGES, True),
    "narrow-latents": _on_latents(means=lambda a: a["means"][:, :3]),  # (N, 3), a 4-d model
    "nan-latents": _on_latents(False, means=lambda a: np.full_like(a["means"], np.nan)),
    "flat-latents": _on_latents(means=lambda a: a["means"].ravel()),
    "short-ids": _on_latents(ids=lambda a: a["ids"][:-3]),
    "empty-latents": _on_latents(
        **{k: (lambda a, k=k: a[k][:0]) for k in ("means", "labels", "ids")}
    ),
    "million-labels": (_million_labels, "config.json", MODEL_PAGES, True),
}
# refused by the library (vae.storage.limits) before anything is allocated
BEFORE_ALLOCATING: dict[str, tuple[Callable[[Path], None], str, tuple[str, ...], bool]] = {
    "huge-latents": (_huge_latents, "latents.npz", LATENT_PAGES, True),
    "nan-weights": (_nan_weights, "model.pt", MODEL_PAGES, False),
    "huge-fft": (_huge_fft, "config.json", MODEL_PAGES, True),
}


# ------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def hostile_root(studio_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The studio workspace copied once for this module; each test adds checkpoints/bad."""
    root = tmp_path_factory.mktemp("hostile") / "ws"
    shutil.copytree(studio_root, root)
    return root


@pytest.fixture
def hostile(hostile_root: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """``hostile(case)``: checkpoints/bad, the good checkpoint tampered as ``case`` says,
    older than the good one (so a fresh session opens the good one); the working directory."""
    monkeypatch.chdir(hostile_root)
    bad = hostile_root / BAD

    def make(case: str) -> Path:
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(hostile_root / GOOD, bad)
        {**CASES, **BEFORE_ALLOCATING}[case][0](bad)
        hour_ago = time.time() - 3600
        os.utime(bad, (hour_ago, hour_ago))  # the good one stays the newest
        return bad

    yield make
    shutil.rmtree(bad, ignore_errors=True)


@contextlib.contextmanager
def memory_ceiling(ceiling: int = CEILING) -> Iterator[Callable[[], int]]:
    """Measure the process's peak RSS growth within the block (VmHWM, reset by writing "5"
    to /proc/self/clear_refs), under an address-space limit ``ceiling`` above what is mapped
    now: an allocation past it raises MemoryError instead of taking the machine down."""
    status = Path("/proc/self/status")
    if not status.is_file():
        pytest.skip("peak RSS is read from /proc/self/status (Linux only)")

    def field(name: str) -> int:
        line = next(ln for ln in status.read_text().splitlines() if ln.startswith(name))
        return int(line.split()[1]) * 1024

    Path("/proc/self/clear_refs").write_text("5")
    start = field("VmRSS:")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = field("VmSize:") + ceiling
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))
    try:
        yield lambda: field("VmHWM:") - start
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def _check_case(case: str, hostile: Callable[[str], Path]) -> None:
    tamper, file, pages, damaged = {**CASES, **BEFORE_ALLOCATING}[case]
    hostile(case)
    for page in MODEL_PAGES:
        with memory_ceiling() as grown:
            at = open_page(page, **{"studio-checkpoint": BAD})
        assert not at.exception, (page, at.exception)
        assert grown() < CEILING, (page, grown())
        assert at.sidebar.selectbox(key=PICKER).value == BAD
        errors = _errors(at)
        if page in pages:
            assert len(errors) == 1, (page, errors)
            assert f"{BAD}/{file}" in errors[0] or file in errors[0], (page, errors)
        else:
            assert errors == [], (page, errors)
        summary = " ".join(c.value for c in at.sidebar.caption)
        assert ("damaged" in summary) == damaged, (page, summary)
    # Home lists it; Train, told to follow the folder, shows at most one line about it.
    home = open_page("home", **{"studio-checkpoint": BAD})
    assert not home.exception and not home.error
    train = open_page("train", **{"train-last-folder": Path(BAD).name})
    assert train.text_input(key="train-folder").value == Path(BAD).name
    assert not train.exception and len(train.error) <= 1, _errors(train)
    # Another session on the good checkpoint, meanwhile: as if the bad one were not there.
    other = open_page("synthesise", **{"studio-checkpoint": GOOD})
    assert not other.exception and not other.error, _errors(other)
    assert other.sidebar.selectbox(key=PICKER).value == GOOD


# ------------------------------------------------------------------------------ tests


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_checkpoint_is_one_error_line_on_every_page(case: str, hostile) -> None:
    _check_case(case, hostile)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BEFORE_ALLOCATING))
def test_a_hostile_checkpoint_is_refused_before_allocating(case: str, hostile) -> None:
    # refused by the library (vae.storage.limits) before anything is allocated
    _check_case(case, hostile)


def test_the_error_wrapper_names_a_full_disk_and_where_to_free_space(tmp_path: Path) -> None:
    """The one line a full disk gets, wherever the app writes (uses no Streamlit page)."""
    from ui.widgets import mount_of, user_message
    from vae.storage.files import DiskFullError

    target = tmp_path / "out.wav"
    raw = OSError(28, "No space left on device")
    assert user_message(raw, target) == (
        f"no space left writing {target} (No space left on device); free some space on "
        f"{mount_of(target)} and try again"
    )
    wrapped = DiskFullError(target, raw, "; the previous out.wav is kept")
    assert user_message(wrapped).endswith(
        f"the previous out.wav is kept; free some space on {mount_of(target)} and try again"
    )
    assert "[Errno 28]" not in user_message(raw, target)


# ------------------------------------------------------------------------------ uploads


def _import(at, name: str, data: bytes) -> None:
    at.file_uploader(key="dataset-upload").set_value([(name, data, "audio/wav")])
    at.run()
    at.button(key="dataset-import").click().run()


@pytest.mark.slow
def test_two_sessions_importing_at_once_each_preprocess_their_own(
    tmp_path: Path, work: Path, write_tone
) -> None:
    alice, bob = open_page("dataset"), open_page("dataset")
    tones = {who: write_tone(tmp_path / f"{who}.wav").read_bytes() for who in ("alice", "bob")}
    _import(alice, "alice.wav", tones["alice"])
    _import(bob, "bob.wav", tones["bob"])  # before Alice preprocesses: was her folder too
    for at, who in ((alice, "alice"), (bob, "bob")):
        assert not at.exception and not at.error, [e.value for e in at.error]
        at.text_input(key="dataset-name").set_value(f"{who}-set").run()
        at.button(key="dataset-preprocess").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
    folders = {
        alice.session_state["dataset-upload-folder"],
        bob.session_state["dataset-upload-folder"],
    }
    assert len(folders) == 2
    for who in ("alice", "bob"):
        manifest = (work / "data" / f"{who}-set" / "manifest.csv").read_text()
        assert f"{who}.wav" in manifest and ({"alice", "bob"} - {who}).pop() not in manifest


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG in this process (as ``test_crash_safety``
    fakes a full disk for the CLI: RLIMIT_FSIZE, SIGXFSZ ignored), restored afterwards."""
    import signal

    before = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, before)


@pytest.mark.slow
def test_a_full_disk_during_an_upload_names_the_folder_and_the_fix(
    tmp_path: Path, work: Path, write_tone
) -> None:
    at = open_page("dataset")
    big = write_tone(tmp_path / "long.wav", seconds=10.0, sample_rate=44100).read_bytes()
    at.file_uploader(key="dataset-upload").set_value([("long.wav", big, "audio/wav")])
    at.run()
    with file_size_limit(len(big) // 4):
        at.button(key="dataset-import").click().run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    folder = Path("data/sources") / at.session_state["dataset-upload-folder"]
    assert error.startswith(f"no space left writing {folder} (File too large)"), error
    assert error.endswith("and try again") and "free some space on /" in error, error
    assert "Errno" not in error


# ------------------------------------------------------------------------------ the sidebar


@pytest.mark.slow
def test_a_100_mb_config_elsewhere_is_not_read_again_on_a_rerun(
    hostile_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vae import workspace

    monkeypatch.chdir(hostile_root)
    big = hostile_root / "checkpoints" / "big"
    big.mkdir()
    (big / "model.pt").write_bytes(b"")
    with (big / "config.json").open("w") as f:  # 100 MB of JSON, one string
        f.write('{"pad": "' + "x" * (100 << 20) + '"}')
    reads: list[Path] = []
    real = workspace.read_json
    monkeypatch.setattr(workspace, "read_json", lambda file: reads.append(file) or real(file))
    try:
        at = open_page("synthesise", **{"studio-checkpoint": GOOD})
        assert not at.exception and not at.error
        first = len(reads)
        at.slider(key="synth-dir-0").set_value(1.5).run()
        at.slider(key="synth-dir-0").set_value(-1.0).run()
        assert not at.exception
        assert reads[first:] == []  # two reruns, no config parsed again
        assert "checkpoints/big: damaged" in at.sidebar.selectbox(key=PICKER).help
    finally:
        shutil.rmtree(big)
