"""The app under load: several people at once, a person's pace, optionally while it trains.

One ``streamlit run app.py`` server pinned to one core (``taskset``); the people on the other.
Most people speak Streamlit's websocket protocol (``app_load_protocol.py``: no renderer, so
six of them cost the client side almost nothing and the server is what is measured); one
(``--browsers``) is a chromium context, for what a person sees. Each acts about once a
second (``--pace``): a Synthesise slider move, an Interpolate α move, a map pick on Explore, a
morph. A protocol person's time is from its move's ``BackMsg`` to the delta that answers it
(a new audio element, the picked clip's heading, the morph's download button), with its
whole rerun beside it; a chromium person's from the input to the answer in the page (new
audio in the player, or with ``--pad on`` the sound pad's ``data-rendered-at``). Meanwhile
the server's RSS is read from /proc every second, its CPU per phase, and every exception
box, page error and server traceback is kept.

Phases, one server, each printed as it ends: one protocol session alone (the baseline), one
chromium session alone, then N at once (N - 1 protocol, 1 chromium); with ``--train`` the
same again while a training job runs beside them (started as the Train page starts it,
``vae.jobs.runner.start``, on the server's core). ``--soak``: one protocol session, 1,000
moves as fast as the server answers, RSS growth after warm-up.

    .venv/bin/python benchmarks/app_load.py --sessions 6 --moves 40 [--train] [--pad on]
    .venv/bin/python benchmarks/app_load.py --soak

Prints a table (median / p90 / max per person kind, action and phase), the RSS trace, the
exceptions and the acceptance lines of issue 26: N sessions' p90 within 2x one session's
(protocol people, with and without training), soak RSS growth within 50 MB. Exits 1 when an
exception was seen, a session saw another's pick, value or sound, or a line fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.app_load_people import ACTIONS, Person, plan, run_phase  # noqa: E402
from tests.browser import free_port, with_shipped_checkpoint  # noqa: E402

# The first two cores this process may use (read before it pins itself to the browser's).
CORES = sorted(os.sched_getaffinity(0))
SERVER_CORE, BROWSER_CORE = CORES[0], CORES[min(1, len(CORES) - 1)]
PIN = len(CORES) >= 2 and shutil.which("taskset") is not None
PROFILE = ROOT / "test-artifacts" / "app-load-profile.pstats"
LIMITS = {"sessions": 2.0, "soak_mb": 50.0}  # issue 26 (as issue 17 asked)


# ------------------------------------------------------------------------------ the server


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    t0: float = field(default_factory=time.monotonic)  # the time the RSS seconds count from


def _pinned(core: int) -> list[str]:
    """``taskset -c CORE`` when there is a second core to leave to the other side."""
    return ["taskset", "-c", str(core)] if PIN else []


@contextmanager
def serve(workspace: Path, pad: bool, log: Path, profile: Path | None = None):
    """The app served from ``workspace`` on its own core; RSS read every second. With
    ``profile``, every script run is profiled into that pstats file (app_load_profiled.py)."""
    port = free_port()
    launcher = ["-m", "streamlit"] if profile is None else [str(HERE / "app_load_profiled.py")]
    cmd = [*_pinned(SERVER_CORE), sys.executable, *launcher, "run",
           str(ROOT / "app.py"), "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT), VAE_SOUND_PAD="1" if pad else "0")
    if profile is not None:
        env["APP_LOAD_PROFILE"] = str(profile)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workspace, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start; see {log}") from None
                time.sleep(0.3)
        watch = threading.Thread(target=_watch_rss, args=(server, stop), daemon=True)
        watch.start()
        yield server
    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mb(pid: int) -> float | None:
    """VmRSS of ``pid`` in MB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _watch_rss(server: Server, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        mb = rss_mb(server.proc.pid)
        if mb is not None:
            server.rss.append((time.monotonic() - server.t0, mb))


def tracebacks(log: Path) -> list[str]:
    """The last line of each traceback the server printed."""
    lines = log.read_text(errors="replace").splitlines()
    found, inside = [], False
    for line in lines:
        if line.startswith("Traceback"):
            inside = True
        elif inside and line and not line.startswith((" ", "\t")):
            found.append(line.strip())
            inside = False
    return found


# ------------------------------------------------------------------------------ training


@contextmanager
def training(folder: Path):
    """A training job on a demo set in ``folder``, started as the Train page starts one
    (``vae.jobs.runner``), from the server's core as the app would; stopped (then killed) on the
    way out. Outside the app's workspace, so the pages the people use read the same files
    with and without it: only the CPU it takes differs."""
    from vae.audio.features import FeatureConfig
    from vae.data.dataset import preprocess
    from vae.data.sources import make_demo_set
    from vae.jobs import runner as jobs

    data = folder / "data" / "load-demo"
    source = make_demo_set(folder / "sources" / "load-demo", n_per_class=40, seed=0)
    preprocess(source, data, FeatureConfig(), val_fraction=0.1, seed=0)
    out = folder / "checkpoints" / "load-training"
    mine = os.sched_getaffinity(0)
    if PIN:
        os.sched_setaffinity(0, {SERVER_CORE})  # the child inherits the server's core
    try:
        run = jobs.start(data, out, jobs.JobOptions(epochs=100_000))
    finally:
        os.sched_setaffinity(0, mine)
    try:
        started = jobs.wait(out, 0)
        deadline = time.monotonic() + 120  # past importing torch: really training
        while started.running and not started.batch and time.monotonic() < deadline:
            time.sleep(0.5)
            started = jobs.status(out)
        if not started.running:
            raise RuntimeError(f"the training job ended: {started.error}")
        yield run
    finally:
        jobs.stop(out)
        if jobs.wait(out, 20).running:
            with suppress(ProcessLookupError):
                os.kill(run.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------ report


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.9 * len(xs)) - 1)]


def merged(people: list[Person], action: str, kind: str = "socket") -> list[float]:
    return [t for p in people if p.kind == kind for t in p.times[action]]


HEADER = (
    f"{'phase':<26} {'who':<8} {'action':<12} {'n':>4} {'median':>7} {'p90':>7} "
    f"{'max':>7} {'rerun':>7}  (ms; rerun: the median move's whole server run)"
)


def rows(name: str, people: list[Person]) -> list[str]:
    """One line per kind of person and action: n, median, p90, max."""
    out = []
    for kind in ("socket", "chromium"):
        for action in ACTIONS:
            xs = merged(people, action, kind)
            runs = [t for p in people if p.kind == kind for t in p.runs[action]]
            rerun = f"{statistics.median(runs):>7.0f}" if runs else f"{'':>7}"
            if xs:
                out.append(f"{name:<26} {kind:<8} {action:<12} {len(xs):>4} "
                           f"{statistics.median(xs):>7.0f} {p90(xs):>7.0f} {max(xs):>7.0f} "
                           f"{rerun}")  # fmt: skip
    return out


def ratio_line(what: str, num: list[float], den: list[float], limit: float | None) -> bool:
    """``num``'s p90 over ``den``'s; a failed line when over ``limit`` (None: shown only)."""
    if not num or not den:
        print(f"{what}: no figures" + ("" if limit is None else " (FAIL)"))
        return limit is None
    r = p90(num) / p90(den)
    ok = limit is None or r <= limit
    verdict = "shown only" if limit is None else f"<= {limit}x: {'ok' if ok else 'FAIL'}"
    print(f"{what}: p90 {p90(num):.0f} / {p90(den):.0f} ms = {r:.2f}x ({verdict})")
    return ok


def _rss_near(trace: list[tuple[float, float]], t0: float) -> float:
    """The median RSS of the 10 s of samples from ``t0`` on (the first sample if none)."""
    return statistics.median([mb for t, mb in trace if t0 <= t <= t0 + 10] or [trace[0][1]])


def rss_report(server: Server, soak_from: float | None = None, half: float | None = None) -> bool:
    trace = server.rss
    if not trace:
        print("server RSS: no samples")
        return True
    step = max(1, len(trace) // 12)
    shown = ", ".join(f"{t:.0f}s {mb:.0f}" for t, mb in trace[::step])
    print(f"server RSS (MB) over time: {shown}; last {trace[-1][1]:.0f}, "
          f"peak {max(mb for _, mb in trace):.0f}")  # fmt: skip
    if soak_from is None:
        return True
    # Medians of 10 s of samples, after warm-up and at the end: one sample can land on a
    # moment's peak of the allocator (a morph's buffers) and say tens of MB either way.
    warm, end = _rss_near(trace, soak_from), statistics.median(mb for _, mb in trace[-10:])
    growth = end - warm
    ok = growth <= LIMITS["soak_mb"]
    print(
        f"soak RSS growth after warm-up (medians of 10 s): {warm:.0f} -> {end:.0f} MB = "
        f"{growth:+.0f} MB (<= {LIMITS['soak_mb']:.0f} MB: {'ok' if ok else 'FAIL'}); "
        f"last sample {trace[-1][1]:.0f} MB"
    )
    if half is not None:  # still growing in the second half: a leak; flat: caches filled
        mid = _rss_near(trace, half)
        print(f"  of which the second half of the moves: {mid:.0f} -> {end:.0f} MB = "
              f"{end - mid:+.0f} MB (shown only)")  # fmt: skip
    return ok


def where_time_goes(path: Path, moves: int, top: int = 25) -> None:
    """The profiled script runs' CPU: the functions that cost most, self and inclusive."""
    import io
    import pstats

    if not path.is_file():
        print(f"no profile at {path}")
        return
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    total = stats.total_tt
    print(f"\nscript runs' CPU, all phases: {total:.1f} s for {moves} moves "
          f"({1000 * total / max(1, moves):.0f} ms a move); profile in {path}")  # fmt: skip
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


# ------------------------------------------------------------------------------ main


def _check_pad(parser: argparse.ArgumentParser) -> None:
    """The sound pad's runtime is installed where Streamlit serves it: a component's file
    whose real path leaves its folder (a symlinked node_modules) is refused with a 404."""
    frontend = ROOT / "ui" / "sound_pad" / "frontend"
    runtime = frontend / "node_modules" / "onnxruntime-web" / "dist" / "ort.wasm.min.js"
    if not runtime.is_file():
        parser.error("--pad on needs `npm ci --prefix ui/sound_pad/frontend`")
    if not runtime.resolve().is_relative_to(frontend.resolve()):
        where = frontend / "node_modules"
        parser.error(f"--pad on: {where} links outside the component's folder, which "
                     "Streamlit will not serve: run `npm ci` there instead")  # fmt: skip


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does: server, job, browsers


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6, help="people at once (default 6)")
    parser.add_argument("--moves", type=int, help="actions per person (default 40; soak 1000)")
    parser.add_argument("--train", action="store_true", help="also run beside a training job")
    parser.add_argument("--soak", action="store_true", help="one session, 1,000 moves: RSS")
    parser.add_argument(
        "--browsers", type=int, default=1, help="people who are chromium (default 1; 0: none)"
    )
    parser.add_argument(
        "--browser-moves", type=int, default=8, help="a chromium person's actions, at least (8)"
    )
    parser.add_argument(
        "--pad",
        choices=("on", "off"),
        default="off",
        help="on: the chromium person plays the in-browser sound pad; off: the server path",
    )
    parser.add_argument("--pace", type=float, help="seconds per action (1.0; soak 0)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"profile every script run (CPU per thread) into {PROFILE.relative_to(ROOT)}",
    )
    args = parser.parse_args()
    args.moves = args.moves or (1000 if args.soak else 40)
    args.pace = args.pace if args.pace is not None else (0.0 if args.soak else 1.0)
    args.browsers = max(0, min(args.browsers, args.sessions - 1))  # one person at least speaks
    if args.pad == "on":
        _check_pad(parser)
    return args


def _verdicts(args, phases: dict[str, list[Person]], server: Server, soak_from, half) -> bool:
    """The summary: every phase's table, RSS, exceptions, leaks and the acceptance lines."""
    print()
    print(HEADER)
    for name, people in phases.items():
        print("\n".join(rows(name, people)))
    ok = rss_report(server, soak_from, half)
    problems = [e for people in phases.values() for p in people for e in p.errors]
    problems += [f"server: {line}" for line in tracebacks(server.log)]
    leaks = [x for people in phases.values() for p in people for x in p.leaks]
    print(f"exceptions: {len(problems)}" + "".join(f"\n  {e}" for e in problems[:20]))
    print(f"cross-session leaks: {len(leaks)}" + "".join(f"\n  {x}" for x in leaks[:20]))
    ok &= not problems and not leaks
    if args.soak:
        return ok
    n = args.sessions
    for extra in ("", " + training") if args.train else ("",):
        one, many = phases[f"1 session{extra}"], phases[f"{n} sessions{extra}"]
        for action in ACTIONS:
            ok &= ratio_line(f"{n} sessions vs 1{extra}, {action}", merged(many, action),
                             merged(one, action), LIMITS["sessions"])  # fmt: skip
        if args.browsers:
            alone = phases.get(f"1 session, chromium{extra}", [])
            for action in ACTIONS:
                ratio_line(f"chromium person among {n} vs alone{extra}, {action}",
                           merged(many, action, "chromium"), merged(alone, action, "chromium"),
                           None)  # fmt: skip
    if args.train:
        # issue 17's line (met with the sound pad); 10 moves' p90 on a shared core: shown only
        ratio_line("1 session with training vs without, synthesise slider",
                   merged(phases["1 session + training"], "synthesise"),
                   merged(phases["1 session"], "synthesise"), None)  # fmt: skip
    return ok


def main() -> int:
    args = _args()
    pad = args.pad == "on"
    if PIN:
        os.sched_setaffinity(0, {BROWSER_CORE})  # this process, playwright and chromium
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="app-load-") as tmp, ExitStack() as stack:
        workspace = Path(tmp) / "app"  # what the app lists: the training is not in it
        with_shipped_checkpoint(workspace)
        log = ROOT / "test-artifacts" / "app-load-server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        profile = PROFILE if args.profile else None
        server = stack.enter_context(serve(workspace, pad, log, profile))
        phases: dict[str, list[Person]] = {}
        started = time.monotonic()
        print(f"app load: {os.cpu_count()} cores, server on core {SERVER_CORE}, people on "
              f"core {BROWSER_CORE}, pace {args.pace:.1f} s, "
              f"{'sound pad' if pad else 'server path'}", flush=True)  # fmt: skip
        print(HEADER, flush=True)

        def progress(person: Person) -> None:  # the soak: a line every 100 moves
            if args.soak and len(person.done_at) % 100 == 0:
                mb = server.rss[-1][1] if server.rss else float("nan")
                print(f"  {len(person.done_at)} moves, {time.monotonic() - started:.0f} s, "
                      f"server RSS {mb:.0f} MB", flush=True)  # fmt: skip

        def phase(name: str, sockets: int, browsers: int, actions: list[str]) -> list[Person]:
            t0, cpu0 = time.monotonic(), cpu_seconds(server.proc.pid)
            browser_plan = plan(max(args.browser_moves, len(ACTIONS)), 2)
            people = asyncio.run(
                run_phase(
                    server.url, sockets, browsers, actions, browser_plan, pad, args.pace, progress
                )
            )
            phases[name] = people
            for line in rows(name, people):
                print(line, flush=True)
            mb = server.rss[-1][1] if server.rss else float("nan")
            errors = sum(len(p.errors) + len(p.leaks) for p in people)
            wall = time.monotonic() - t0
            busy = (cpu_seconds(server.proc.pid) - cpu0) / wall
            print(
                f"  ({sockets} protocol + {browsers} chromium, {wall:.0f} s, server CPU "
                f"{busy:.0%} of a core, RSS {mb:.0f} MB, {errors} problems)",
                flush=True,
            )
            return people

        soak_from = half = None
        if args.soak:
            phase("soak, 1 session", 1, 0, plan(args.moves, 25))
            # Warm: every action done once (the caches filled), or a tenth of the moves.
            done = phases["soak, 1 session"][0].done_at
            warm = min(len(done) - 1, max(len(ACTIONS) * 25, args.moves // 10))
            soak_from = done[warm] - server.t0 if done else None
            half = done[len(done) // 2] - server.t0 if done else None
        else:
            block = max(1, args.moves // len(ACTIONS))
            b, n = args.browsers, args.sessions
            for extra in ("", " + training") if args.train else ("",):
                if extra:
                    stack.enter_context(training(Path(tmp) / "training"))
                phase(f"1 session{extra}", 1, 0, plan(args.moves, block))
                if b:
                    phase(f"1 session, chromium{extra}", 0, 1, [])
                phase(f"{n} sessions{extra}", n - b, b, plan(args.moves, block))
        print(f"\n{time.monotonic() - started:.0f} s in all")
        ok = _verdicts(args, phases, server, soak_from, half)
    if args.profile:  # the server has stopped: its last runs are written
        where_time_goes(PROFILE, sum(len(p.done_at) for ps in phases.values() for p in ps))
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the servers and the job were stopped on the way out
        sys.exit(130)
