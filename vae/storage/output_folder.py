"""One rule for every folder a command writes: it must be missing, empty, or already the same
kind of output, and replacing one never deletes a file the writer did not write. A dataset
is replaced only when asked (:func:`refuse_replacing_dataset`): checkpoints trained on it
would point at other data.

Each kind of output (a dataset, a checkpoint, a vocoder, an export, a judge, the demo set) is
recognised by its marker files, and names the entries it writes. :func:`check_output_folder`
refuses any other folder (a dataset given as a vocoder's ``--out``, the folder holding two
datasets and a notes file) with one line naming the folder, what it holds and the fix, before
any work is done. :func:`install` puts a folder built aside in place by renaming it, so a kill
leaves the old output or the new one (``vae.storage.files.swap_into_place``); the entries of an
older output that its kind does not write (a user's ``my_notes.txt``, ``sub/keep.txt``) are
hard-linked into the new folder first, so they are kept, byte for byte, across the swap.

The file names are written out here rather than imported, so that the modules of each kind
can import this one (tests/unit/test_output_folder.py holds them equal).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vae.storage.files import read_json, swap_into_place, temp_beside, tidy_leftovers

# write_atomically's temp files: ".<name>.<pid>-<hex>.tmp" (a writer killed mid-write)
_TEMP_FILE = re.compile(r"^\..+\.\d+-[0-9a-f]+\.tmp$")


@dataclass(frozen=True)
class OutputKind:
    """A kind of output folder.

    Attributes:
        name: what one is called, with its article ("a dataset").
        markers: files that, all present, make a folder this kind.
        manifest: the file written last (a folder without it is not complete).
        writes: whether an entry name is one this kind's writer writes (and may replace).
        leftovers: names a run of this kind leaves before its markers exist (a training
            killed in its first epoch); a folder holding only these is this kind too.
        marker_text: the first marker must start with this text (the demo set's README).
    """

    name: str
    markers: tuple[str, ...]
    manifest: str
    writes: Callable[[str], bool]
    leftovers: Callable[[str], bool] = lambda name: False
    marker_text: str = ""

    def holds(self, folder: Path) -> bool:
        """Whether ``folder`` is one of this kind: its markers are there."""
        if not all((folder / m).is_file() for m in self.markers):
            return False
        if not self.marker_text:
            return True
        try:
            with (folder / self.markers[0]).open(encoding="utf-8", errors="replace") as f:
                return f.read(len(self.marker_text)) == self.marker_text
        except OSError:
            return False


def _names(*names: str) -> Callable[[str], bool]:
    """A predicate true for exactly ``names``."""
    known = frozenset(names)
    return known.__contains__


DATASET = OutputKind(
    "a dataset",
    ("config.json", "features.npy"),
    "config.json",
    _names("features.npy", "waveforms.npy", "manifest.csv", "config.json", "errors.csv"),
)
# Besides its own files a checkpoint holds what later commands add (vocoder/, judge/, an
# export of the pad, sharpen's files): a complete one is never written through install().
_CHECKPOINT_RUN = (
    *("model.pt", "config.json", "metrics.jsonl", "latents.npz", "prior.npz", "best"),
    *(".lock", "job.json", "train.log", "sharpen.pt", "sharpen.json"),
)
CHECKPOINT = OutputKind(
    "a checkpoint",
    ("config.json", "model.pt"),
    "config.json",
    _names(*_CHECKPOINT_RUN),
    leftovers=lambda name: name in _CHECKPOINT_RUN or bool(_TEMP_FILE.match(name)),
)
VOCODER = OutputKind(
    "a vocoder", ("vocoder.json",), "vocoder.json", _names("vocoder.pt", "vocoder.json")
)
_EXPORT_FILE = re.compile(r"^(decoder|decoder_mix|encoder|vocoder)\.(onnx|pt)(\.data)?$")
EXPORT = OutputKind(
    "an export",
    ("export.json",),
    "export.json",
    lambda name: name == "export.json" or bool(_EXPORT_FILE.match(name)),
)
JUDGE = OutputKind("a judge", ("judge.json",), "judge.json", _names("judge.pt", "judge.json"))
DEMO_SET = OutputKind(
    "a demo set",
    ("README.txt",),
    "README.txt",
    _names("README.txt", "rising", "falling", "tone", "pulses", "noise"),
    marker_text="Sound VAE Studio synthetic demo set",
)
KINDS = (DATASET, CHECKPOINT, VOCODER, EXPORT, JUDGE, DEMO_SET)


def _what_it_holds(folder: Path, kind: OutputKind) -> str:
    """A few words on a foreign folder's content: another kind, else its first entries."""
    for other in KINDS:
        if other is not kind and other.holds(folder):
            return other.name
    foreign = sorted(p.name for p in folder.iterdir() if not kind.leftovers(p.name))
    shown = ", ".join(foreign[:3])
    return shown + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")


def check_output_folder(out: str | Path, kind: OutputKind) -> bool:
    """Refuse ``out`` unless it is missing, empty, or already ``kind`` (or only holds what a
    run of ``kind`` leaves behind); True when it holds something to replace.

    Raises:
        ValueError: one line naming the folder, what it holds and the fix; nothing in it
            has been touched.
    """
    out = Path(out)
    label = kind.name.split(" ", 1)[1]
    if not out.exists():
        if out.is_symlink():
            raise ValueError(f"{out}: a broken link; choose an empty or new folder")
        return False
    if not out.is_dir():
        raise ValueError(
            f"{out}: exists and is a file, not a {label} folder; choose an empty or new folder"
        )
    if kind.holds(out):
        return True
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return False
    if all(kind.leftovers(name) for name in entries):
        return True
    article = "an" if label[0] in "aeiou" else "a"
    raise ValueError(
        f"{out}: exists and is not {article} {label} folder (holds {_what_it_holds(out, kind)})"
        "; choose an empty or new folder (nothing in it was changed)"
    )


def _keep_foreign(out: Path, tmp: Path, kind: OutputKind) -> None:
    """Hard-link every entry of ``out`` that ``kind`` does not write into ``tmp`` (folders
    rebuilt, their files linked), so the swap keeps them without copying a byte.

    Raises:
        ValueError: an entry cannot be linked (on another file system, or not ours to link);
            nothing in ``out`` has been touched.
    """
    for entry in sorted(out.iterdir()):
        if kind.writes(entry.name):
            continue
        target = tmp / entry.name
        try:
            if entry.is_symlink():
                os.symlink(os.readlink(entry), target)
            elif entry.is_dir():
                shutil.copytree(entry, target, symlinks=True, copy_function=os.link)
            else:
                os.link(entry, target)
        except OSError as err:
            raise ValueError(
                f"{out}: {entry.name} cannot be kept while replacing {kind.name} "
                f"({err.strerror or err}); move it out, or choose an empty or new folder"
            ) from None


def install(tmp: Path, out: Path, kind: OutputKind) -> Path:
    """Put the finished folder ``tmp`` (a sibling of ``out``) in place as ``out``.

    A missing ``out`` is ``tmp`` renamed. An existing one is checked again
    (:func:`check_output_folder`); the entries its kind does not write are hard-linked into
    ``tmp``, then the folders are swapped (a kill leaves the old one or the new one) and the
    old one deleted: files of an older output that the new one lacks go, the user's stay.

    Raises:
        ValueError: ``out`` is not ``kind``, or holds an entry that cannot be linked.
    """
    out = Path(out)
    if out.exists():
        check_output_folder(out, kind)
        _keep_foreign(out, tmp, kind)
    swap_into_place(tmp, out)
    return out


def write_output(out: str | Path, kind: OutputKind, write: Callable[[Path], None]) -> Path:
    """Build the folder ``out`` of ``kind`` aside with ``write(tmp)`` (the manifest last)
    and put it in place (:func:`install`); a failure removes what was built and leaves
    ``out`` as it was. Leftovers of runs killed while building or swapping go first.

    Raises:
        ValueError: ``out`` is not ``kind`` (checked before ``write`` spends any work).
    """
    out = Path(out)
    check_output_folder(out, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    tidy_leftovers(out.absolute(), kind.manifest)
    tmp = temp_beside(out)
    tmp.mkdir()
    try:
        write(tmp)
        return install(tmp, out, kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------- replacing a dataset
# Where the app and the CLI keep checkpoints (vae.workspace.CHECKPOINT_ROOT, which imports
# the modules that import this one; tests/unit/test_output_folder.py holds them equal).
CHECKPOINT_ROOT = Path("checkpoints")
MAX_NAMED = 3  # checkpoints named in one line; the rest are counted


class DatasetExists(ValueError):
    """``--out`` already holds a dataset and replacing it was not asked for; nothing changed."""


def _printable(text: object, limit: int = 160) -> str:
    """``text`` on one line and at most ``limit`` characters: a config.json from elsewhere
    may hold a newline or a megabyte where its source path belongs."""
    shown = "".join(c if c.isprintable() else "?" for c in str(text))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _same_folder(recorded: object, folder: Path) -> bool:
    """Whether a path a checkpoint recorded (absolute, or relative to the working folder as
    the shipped one's ``data/fsdd``) is ``folder``."""
    try:
        return isinstance(recorded, str) and Path(recorded).resolve() == folder.resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a link loop
        return False


def checkpoints_trained_on(
    dataset: Path, fingerprint: object, root: Path = CHECKPOINT_ROOT
) -> list[Path]:
    """Checkpoints under ``root`` (and the judge's ``best/`` of a run) whose config.json
    names ``dataset`` and its current ``fingerprint``: the ones a replacement would leave
    pointing at other data. One that already points at other content is not named."""
    root, found = Path(root), []
    if not isinstance(fingerprint, str) or not root.is_dir():
        return []
    configs = sorted(root.glob("*/config.json")) + sorted(root.glob("*/best/config.json"))
    for config in configs:
        if config.parent.name.startswith(".") or not CHECKPOINT.holds(config.parent):
            continue
        try:
            recorded = read_json(config).get("dataset", {})
        except (OSError, ValueError, AttributeError):
            continue  # a damaged checkpoint: the sidebar says why
        if (
            isinstance(recorded, dict)
            and recorded.get("fingerprint") == fingerprint
            and _same_folder(recorded.get("path"), dataset)
        ):
            found.append(config.parent)
    return found


@dataclass(frozen=True)
class ExistingDataset:
    """A dataset that preprocessing into its folder would replace."""

    path: Path
    clips: object  # its config.json's count (shown, never computed with)
    source: str
    checkpoints: list[Path]

    def describe(self, src: Path | None = None) -> str:
        """One line: "data/x: already holds a dataset (200 clips from /clips; checkpoints
        trained on it: checkpoints/x)"."""
        same = src is not None and self.source == str(Path(src).absolute())
        origin = "this same source" if same else _printable(self.source)
        clips = f"{self.clips} clips" if isinstance(self.clips, int) else "clips"
        text = f"{self.path}: already holds a dataset ({clips} from {origin}"
        if self.checkpoints:
            named = ", ".join(str(p) for p in self.checkpoints[:MAX_NAMED])
            more = len(self.checkpoints) - MAX_NAMED
            named += f" and {more} more" if more > 0 else ""
            text += f"; checkpoints trained on it: {named}"
        return text + ")"


def existing_dataset(out: Path, root: Path = CHECKPOINT_ROOT) -> ExistingDataset | None:
    """The dataset in ``out`` with the checkpoints trained on it, or None when ``out``
    holds none. A config.json that cannot be read still counts as a dataset."""
    out = Path(out)
    if not DATASET.holds(out):
        return None
    try:
        info = read_json(out / "config.json")
        info = info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        info = {}
    counts = info.get("counts") if isinstance(info.get("counts"), dict) else {}
    users = checkpoints_trained_on(out, info.get("fingerprint"), root)
    return ExistingDataset(out, counts.get("kept"), str(info.get("source", "?")), users)


def refuse_replacing_dataset(
    out: Path, src: Path | None = None, root: Path = CHECKPOINT_ROOT
) -> None:
    """Refuse to preprocess into a folder that already holds a dataset, whatever its source:
    replacing one is asked for (``--overwrite``, the Dataset page's "Replace dataset"), as a
    checkpoint trained on it would then point at other data.

    Raises:
        DatasetExists: one line naming the folder, its source, the checkpoints trained on it
            and ``--overwrite``; nothing has been touched.
    """
    existing = existing_dataset(out, root)
    if existing is not None:
        raise DatasetExists(
            f"{existing.describe(src)}; pass --overwrite to replace it, or choose another "
            "--out (nothing was changed)"
        )
