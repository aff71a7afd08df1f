"""One rule for every folder a command writes: it must be missing, empty, or already the same
kind of output, and replacing one never deletes a file the writer did not write.

Each kind of output (a dataset, a checkpoint, a vocoder, an export, a judge, the demo set) is
recognised by its marker files, and names the entries it writes. :func:`check_output_folder`
refuses any other folder (a dataset given as a vocoder's ``--out``, the folder holding two
datasets and a notes file) with one line naming the folder, what it holds and the fix, before
any work is done. :func:`install` puts a folder built aside in place by renaming it, so a kill
leaves the old output or the new one (``vae.storage.swap_into_place``); the entries of an
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

from vae.storage import swap_into_place

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
