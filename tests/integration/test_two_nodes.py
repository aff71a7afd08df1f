"""`python -m vae train` on two machines: two network namespaces joined by a veth pair stand in
for two hosts (each its own network stack, talking over the pair only), and `torchrun --nnodes
2 --rdzv-backend c10d` runs once in each, gloo on the CPU. The weights equal a one-process run;
SIGKILL of either node (rank 1, or rank 0 with the rendezvous store) stops the other in one
clear line; `--resume` on two nodes continues.

Needs root and iproute2 (`ip netns`); skips with the reason elsewhere. The namespaces get
unique names and are deleted in teardown, with every process still in them, even on failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.torchrun_helpers import ARGS, ATOL, ENV, ROOT, TINY, epoch_records, max_diff
from tests.torchrun_helpers import one_process_config as cfg
from vae.model import checkpoints as ck
from vae.training.train import train

pytestmark = pytest.mark.slow

SUBNET = "10.77.0"
LOST = "another process or machine of this training is gone"
PORTS = itertools.count(29500)  # one rendezvous port per run: no wait on a closing socket


@dataclass(frozen=True)
class Node:
    """One namespace: its name, its end of the veth pair and that end's address."""

    netns: str
    ifname: str
    addr: str


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _kill_all(netns: str) -> None:
    """SIGKILL every process in ``netns``, as if its machine died (torchrun starts each
    worker in a session of its own, so the agent's process group is not enough)."""
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    for pid in pids.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _teardown(netns: str) -> None:
    """Kill whatever still runs in ``netns``, then delete it (its veth end goes with it)."""
    _kill_all(netns)
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Node, Node]]:
    """Two fresh namespaces joined by a veth pair, loopback up in each; deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("two network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is missing: apt-get install iproute2")
    tag = uuid.uuid4().hex[:6]
    a = Node(f"vae-{tag}-a", f"vae{tag}a", f"{SUBNET}.1")
    b = Node(f"vae-{tag}-b", f"vae{tag}b", f"{SUBNET}.2")
    try:
        try:
            _ip("netns", "add", a.netns)
            _ip("netns", "add", b.netns)
            _ip("link", "add", a.ifname, "type", "veth", "peer", "name", b.ifname)
            for node in (a, b):
                _ip("link", "set", node.ifname, "netns", node.netns)
                _ip("-n", node.netns, "addr", "add", f"{node.addr}/24", "dev", node.ifname)
                _ip("-n", node.netns, "link", "set", "lo", "up")
                _ip("-n", node.netns, "link", "set", node.ifname, "up")
        except (OSError, subprocess.TimeoutExpired) as err:
            pytest.skip(f"cannot create network namespaces here: {err}")
        yield a, b
    finally:
        for node in (a, b):
            _teardown(node.netns)
        subprocess.run(["ip", "link", "del", a.ifname], capture_output=True)  # if never moved


def _start(node: Node, host: Node, port: int, run_id: str, *args: object) -> subprocess.Popen:
    """`torchrun --nnodes 2` in ``node``'s namespace; ``host`` serves the rendezvous store.

    ``--local-addr`` names each node by its address (rank 0 is the smaller one, ``host``),
    GLOO_SOCKET_IFNAME keeps gloo on the veth end, and short timeouts bound every wait.
    """
    conf = f"is_host={int(node == host)},join_timeout=60"
    cmd = ["ip", "netns", "exec", node.netns, sys.executable, "-m", "torch.distributed.run"]
    cmd += ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    cmd += ["--rdzv-endpoint", f"{host.addr}:{port}", "--rdzv-id", run_id, "--rdzv-conf", conf]
    cmd += ["--local-addr", node.addr, "-m", "vae", "train", *map(str, args), *ARGS]
    env = {**ENV, "GLOO_SOCKET_IFNAME": node.ifname, "VAE_DIST_TIMEOUT": "60"}
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Its output once it ends; SIGKILLed (with all its children) after ``timeout`` s."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return out, err + f"\n(killed after {timeout} s)"


def _two_nodes(nodes: tuple[Node, Node], *args: object) -> None:
    """Train on both nodes to the end; both must exit 0."""
    a, b = nodes
    port, run_id = next(PORTS), uuid.uuid4().hex[:8]
    procs = [_start(node, a, port, run_id, *args) for node in (a, b)]
    results = [_finish(p, 120) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nodes")


def _kill_one(nodes: tuple[Node, Node], victim: int, out: Path, data: Path) -> dict:
    """A long two-node run whose node ``victim`` (0: a, rank 0 and the rendezvous host; 1: b)
    dies, agent and worker, mid-epoch after epoch 1 is saved; what the survivor said, its
    exit status and how long it took to stop."""
    a, _ = nodes
    port, run_id = next(PORTS), uuid.uuid4().hex[:8]
    args = (data, "--out", out, "--epochs", 1000)
    procs = [_start(node, a, port, run_id, *args) for node in nodes]
    survivor = procs[1 - victim]
    try:
        deadline = time.monotonic() + 180  # a loaded machine starts slowly
        while time.monotonic() < deadline and survivor.poll() is None:
            if (out / ck.CONFIG_FILE).is_file():  # written last: epoch 1 is saved
                break
            time.sleep(0.05)
        if not (survivor.poll() is None and (out / ck.CONFIG_FILE).is_file()):
            pytest.fail(f"ended or hung before the kill: {_finish(survivor, 5)[1][-3000:]}")
        time.sleep(0.3)  # an epoch is ~0.2 s: somewhere inside one
        _kill_all(nodes[victim].netns)  # the whole machine: agent and worker
        killed_at = time.monotonic()
        _, stderr = _finish(survivor, 90)
        seconds = time.monotonic() - killed_at
    finally:
        _finish(procs[victim], 10)
    return {"out": out, "data": data, "stderr": stderr, "seconds": seconds,
            "returncode": survivor.returncode}  # fmt: skip


def _assert_one_line(killed: dict, rank: int) -> None:
    """The survivor (``rank``) stopped soon with one line; the checkpoint is whole."""
    assert killed["returncode"] != 0 and killed["seconds"] < 60, killed["stderr"][-3000:]
    lines = [line for line in killed["stderr"].splitlines() if LOST in line]
    assert len(lines) == 1, killed["stderr"][-3000:]
    assert lines[0].startswith(f"error: rank {rank}: ")
    assert str(killed["out"]) in lines[0] and "--resume on every machine" in lines[0]
    saved = ck.load_checkpoint(killed["out"]).epoch  # the last finished epoch, whole
    assert saved >= 1
    assert [r["epoch"] for r in epoch_records(killed["out"])] == list(range(1, saved + 1))


@pytest.fixture(scope="module")
def killed(nodes: tuple[Node, Node], root: Path, demo_dataset_dir: Path) -> dict:
    """Node b (rank 1) killed; the survivor is rank 0, on a."""
    return _kill_one(nodes, 1, root / "killed", demo_dataset_dir)


def test_two_nodes_equal_one_process(
    nodes: tuple[Node, Node], root: Path, demo_dataset_dir: Path
) -> None:
    _two_nodes(nodes, demo_dataset_dir, "--out", root / "two", "--epochs", 2)
    train(demo_dataset_dir, root / "one", train_config=cfg(2), model_overrides=TINY)
    records = epoch_records(root / "two")
    assert [r["epoch"] for r in records] == [1, 2] and all(r["world_size"] == 2 for r in records)
    assert ck.load_checkpoint(root / "two").epoch == 2
    assert max_diff(root / "two", root / "one") < ATOL


def test_killing_one_node_stops_the_other_in_one_line(killed: dict) -> None:
    _assert_one_line(killed, rank=0)
    assert not (killed["out"] / ".lock").exists()  # rank 0 survived and let go


def test_killing_the_rank_0_node_stops_the_other_too(
    nodes: tuple[Node, Node], root: Path, demo_dataset_dir: Path
) -> None:
    """Rank 0 hosts the rendezvous store and writes the checkpoint: rank 1 still stops."""
    _assert_one_line(_kill_one(nodes, 0, root / "killed-0", demo_dataset_dir), rank=1)


def test_resume_on_two_nodes_equals_an_uninterrupted_run(
    nodes: tuple[Node, Node], root: Path, killed: dict
) -> None:
    out = root / "resumed"
    shutil.copytree(killed["out"], out)
    target = ck.load_checkpoint(out).epoch + 1
    _two_nodes(nodes, killed["data"], "--out", out, "--epochs", target, "--resume")
    assert [r["epoch"] for r in epoch_records(out)] == list(range(1, target + 1))
    assert ck.load_checkpoint(out).epoch == target
    train(killed["data"], root / "straight", train_config=cfg(target), model_overrides=TINY)
    assert max_diff(out, root / "straight") < ATOL
