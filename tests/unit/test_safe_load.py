"""The one weights loader (vae.storage.safe_load) the checkpoint, the judge and the vocoder
share: every hostile or damaged file is one line naming it and the fix, and a pickle never
runs. The callers' own wording is tested in test_checkpoints, test_judge and test_vocoder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.pickle_trap import Trap
from vae.storage.safe_load import load_weights

FIX = "retrain it"


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


def _missing(file: Path) -> None:
    file.unlink()


def _truncated(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:100])


def _pickle(file: Path) -> None:
    torch.save({**_net().state_dict(), "x": Trap(file.parent / "code-ran")}, file)


def _nan(file: Path) -> None:
    state = _net().state_dict()
    state["1.bias"][0] = float("nan")
    torch.save(state, file)


def _other_shape(file: Path) -> None:
    torch.save(nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2)).state_dict(), file)


def _not_a_dict(file: Path) -> None:
    torch.save([torch.zeros(2)], file)


def _huge(file: Path) -> None:
    torch.save({**_net().state_dict(), "pad": torch.zeros(10_000)}, file)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (_missing, "missing"),
    "truncated": (_truncated, "truncated or corrupt"),
    "pickle": (_pickle, "refused, it holds objects other than tensors"),
    "nan": (_nan, "tensor '1.bias' holds NaN or inf"),
    "other-shape": (_other_shape, "weights do not fit the net in net.json"),
    "not-a-dict": (_not_a_dict, "not a sound-vae-studio weights file"),
    "huge": (_huge, "bytes, more than the 20,000 it may take"),
}


class _Refused(ValueError):
    pass


def test_a_sound_file_loads_its_weights(tmp_path: Path) -> None:
    torch.save(_net().state_dict(), tmp_path / "w.pt")
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    load_weights(net, tmp_path / "w.pt", 20_000, "the net in net.json", FIX)
    for name, value in _net().state_dict().items():
        assert torch.equal(net.state_dict()[name], value)


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_file_is_one_line_naming_it_and_the_fix(tmp_path: Path, damage: str) -> None:
    file = tmp_path / "w.pt"
    torch.save(_net().state_dict(), file)
    tamper, why = DAMAGE[damage]
    tamper(file)
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(_Refused) as err:
        load_weights(net, file, 20_000, "the net in net.json", FIX, _Refused)
    message = str(err.value)
    assert message.startswith(f"{file}: ") and why in message and "\n" not in message
    # NaN and a pickle name their own fix (retrain; load only files this tool wrote)
    assert damage in ("nan", "pickle") or message.endswith(FIX)
    assert not (tmp_path / "code-ran").exists()
    if damage != "other-shape":  # load_state_dict may have copied some tensors before failing
        assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
