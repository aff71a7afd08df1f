"""Running one training over several processes: torchrun's environment, the process group,
sharding and the few collectives the trainer needs.

``torchrun --nproc_per_node N -m vae train ...`` starts N copies of the same command with
WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE set. Without them (a plain ``python -m
vae train``) there is one process, no process group, and every helper here is a no-op, so
the single-process path costs nothing. One group serves both devices: gloo carries CPU
tensors (and the pickled objects rank 0 shares), NCCL carries CUDA tensors.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

TIMEOUT_ENV = "VAE_DIST_TIMEOUT"
# How long a rank waits in a collective for the others before giving up (torch's default is
# 30 minutes). The longest honest wait is the others waiting while rank 0 saves a checkpoint.
DEFAULT_TIMEOUT_S = 600


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``size`` and on its own machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone locks the folder and writes checkpoints, metrics and latents."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there are other processes to talk to."""
        return self.size > 1


def from_env() -> World:
    """The World that torchrun's variables describe; one process when they are absent."""

    def read(name: str, default: int) -> int:
        text = os.environ.get(name, "")
        if not text:
            return default
        if not text.isdigit():
            raise ValueError(f"{name}={text!r} must be a number; launch with torchrun")
        return int(text)

    size = read("WORLD_SIZE", 1)
    world = World(
        rank=read("RANK", 0),
        size=size,
        local_rank=read("LOCAL_RANK", 0),
        local_size=read("LOCAL_WORLD_SIZE", 1 if size == 1 else size),
    )
    if not 0 <= world.rank < world.size:
        raise ValueError(f"RANK={world.rank} outside 0..{world.size - 1}; launch with torchrun")
    return world


def start(world: World) -> None:
    """Join the process group (a no-op for one process); MASTER_ADDR/PORT come from torchrun."""
    if not world.active or dist.is_initialized():
        return
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(
        backend=backend, rank=world.rank, world_size=world.size, timeout=timeout()
    )


def timeout() -> timedelta:
    """The process group's timeout: ``VAE_DIST_TIMEOUT`` seconds, 600 when unset."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return timedelta(seconds=DEFAULT_TIMEOUT_S)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{TIMEOUT_ENV}={text!r} must be a whole number of seconds, e.g. 600")
    return timedelta(seconds=int(text))


def stop() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        with contextlib.suppress(RuntimeError):  # a group whose peer is gone may refuse
            dist.destroy_process_group()


def device_for(world: World, device: torch.device) -> torch.device:
    """One GPU per process: a CUDA device becomes cuda:LOCAL_RANK under torchrun."""
    if world.active and device.type == "cuda":
        return torch.device("cuda", world.local_rank % torch.cuda.device_count())
    return device


def shard(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``n`` items split as evenly as possible among
    ``size`` ranks; the shares are disjoint, in rank order, and cover 0..n-1."""
    return slice(n * rank // size, n * (rank + 1) // size)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over every rank, in place; returns it (unchanged for one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def sum_over_ranks(values: Iterable[float]) -> list[float]:
    """The sums over every rank of these numbers, in float64, in one all-reduce (the numbers
    themselves on one process): the loop's loss terms and flags, named by its caller."""
    return all_reduce_sum(torch.tensor(list(values), dtype=torch.float64)).tolist()


class RankFailed(RuntimeError):
    """What the other ranks raise when rank 0 failed at something they were waiting for."""


def on_main(world: World, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 and hand its result (or its failure) to every rank.

    The other ranks wait here, so this is also the barrier after each save; a failure on
    rank 0 re-raises there and raises :class:`RankFailed` elsewhere, instead of leaving
    them waiting for a collective that never comes.
    """
    if not world.active:
        return fn()
    box: list[object] = [None]
    if world.is_main:
        try:
            box[0] = ("ok", fn())
        except BaseException as err:  # shared, then re-raised below
            box[0] = ("error", f"{type(err).__name__}: {err}")
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]  # type: ignore[misc]
    if kind == "error":
        raise RankFailed(f"rank 0 failed: {value}")
    return value  # type: ignore[return-value]


def check_all(world: World, error: str | None) -> None:
    """Every rank states its own problem (or None); all raise ValueError if any has one."""
    if not world.active:
        if error:
            raise ValueError(error)
        return
    errors: list[str | None] = [None] * world.size
    dist.all_gather_object(errors, error)
    found = [(r, e) for r, e in enumerate(errors) if e]
    if found:
        rank, message = found[0]
        raise ValueError(message if rank == world.rank else f"rank {rank}: {message}")


class PeerLost(RuntimeError):
    """Another rank of this training is gone (its machine or process died, or the network
    between them failed): every rank left stops with one line saying how to resume."""


# What gloo and NCCL say when a peer vanishes (torch raises DistError or a plain RuntimeError).
_LOST_SIGNS = ("connection closed by peer", "connection reset", "timed out", "broken pipe")


@contextlib.contextmanager
def peer_watch(world: World, out: object) -> Iterator[None]:
    """Turn a collective that failed because another rank vanished into :class:`PeerLost`.

    Args:
        world: this process's place; one process passes everything through untouched.
        out: the checkpoint folder, named in the message (rank 0 keeps its last epoch there).
    """
    try:
        yield
    except (PeerLost, RankFailed):
        raise
    except RuntimeError as err:
        text = str(err)
        lost = isinstance(err, dist.DistError) or any(s in text.lower() for s in _LOST_SIGNS)
        if not world.active or not lost:
            raise
        first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        raise PeerLost(
            f"rank {world.rank}: another process or machine of this training is gone "
            f"({first[:160]}); the checkpoint in {out} keeps the last finished epoch: "
            f"run the same torchrun command with --resume on every machine"
        ) from err
