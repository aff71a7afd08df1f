"""Several visitors uploading large files at once (issue 23, acceptance 2): the server's
memory while they upload and after they leave, and the upload folders they leave behind.

A real ``streamlit run app.py`` on a temporary workspace (the shipped checkpoint copied in)
and Debian's chromium through Playwright: each session its own browser context, opening
Dataset -> "Upload files or a zip", choosing one WAV of ``--mb`` MB and pressing Import;
every session's upload starts before the first Import. Then every context closes. Prints
the server's RSS (from /proc) at start (after one warm-up session opened the Dataset page
and left), its peak, with the imports done and the sessions still open, and after they
closed and the sweeper removed their folders; and how many imports were accepted, refused,
and how many upload folders remain. Takes about four minutes: Streamlit keeps a closed
tab's session 120 s for a reconnect, and ``ui.session_files`` waits a little past that.

    .venv/bin/python benchmarks/upload_sessions.py --sessions 5 --mb 150
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.browser import (  # noqa: E402 - the repository on the path first
    BROWSER_ARGS,
    CHROMIUM,
    ROOT,
    free_port,
    key,
    settle,
    with_shipped_checkpoint,
)

MiB = 2**20


def write_wav(path: Path, mb: float, rate: int = 8000) -> Path:
    """A mono 16-bit WAV of about ``mb`` MB: a quiet tone, written in blocks."""
    samples = int(mb * MiB) // 2
    header = b"RIFF" + (36 + 2 * samples).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += rate.to_bytes(4, "little") + (2 * rate).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    header += b"data" + (2 * samples).to_bytes(4, "little")
    block = (3000 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype("<i2").tobytes()
    with path.open("wb") as f:
        f.write(header)
        left = 2 * samples
        while left > 0:
            f.write(block[:left])
            left -= len(block)
    return path


def rss(pid: int) -> int:
    """The process's resident set size in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Sampler(threading.Thread):
    """The server's peak RSS, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, rss(self.pid))
            except (OSError, RuntimeError):
                return
            time.sleep(0.05)


def start_server(workspace: Path, port: int, tree: Path = ROOT) -> subprocess.Popen:
    """``streamlit run`` of ``tree``'s app.py in ``workspace``, once it answers."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(tree / "app.py"), "--server.port",
           str(port), "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]  # fmt: skip
    log = open(workspace / "streamlit.log", "w")  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen(cmd, cwd=workspace, env=dict(os.environ, PYTHONPATH=str(tree)),
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"streamlit did not start; see {log.name}") from None
            time.sleep(0.3)


def open_dataset(browser, url: str):
    """A new session on the Dataset page's upload tab: (context, page)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = ctx.new_page()
    page.set_default_timeout(600_000)
    page.goto(url)
    page.wait_for_selector("h1:has-text('Sound VAE Studio')")
    settle(page)
    page.locator("[data-testid='stSidebarNav'] a", has_text="Dataset").first.click()
    page.wait_for_selector("h1:has-text('Dataset')")
    settle(page)
    page.get_by_role("tab", name="Upload files or a zip").click()
    return ctx, page


def upload_folders(workspace: Path) -> list[str]:
    sources = workspace / "data" / "sources"
    return sorted(p.name for p in sources.glob("upload-*")) if sources.is_dir() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--mb", type=float, default=150.0, help="size of each upload")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the sweep")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="vae-uploads-") as tmp:
        workspace = Path(tmp) / "work"
        workspace.mkdir()
        with_shipped_checkpoint(workspace)
        wav = write_wav(Path(tmp) / "big.wav", args.mb)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(workspace, port)
        sampler = Sampler(server.pid)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
                ctx, _ = open_dataset(browser, url)  # warm-up: imports and caches loaded
                ctx.close()
                time.sleep(2)
                start = rss(server.pid)
                sampler.start()
                t0 = time.monotonic()
                sessions = [open_dataset(browser, url) for _ in range(args.sessions)]
                for _, page in sessions:  # every upload under way before the first Import
                    page.locator(f"{key('dataset-upload')} input[type='file']").set_input_files(
                        str(wav)
                    )
                accepted = refused = 0
                for _, page in sessions:
                    page.locator(f"{key('dataset-import')} button:not([disabled])").click()
                    outcome = page.locator(
                        "text=/audio files\\)|one import may hold|one session may keep|"
                        "allowed for every visitor/"
                    ).first
                    outcome.wait_for()
                    settle(page, timeout=600)
                    refused += int("audio files)" not in outcome.inner_text())
                    accepted += int("audio files)" in outcome.inner_text())
                imported = rss(server.pid)
                folders_open = len(upload_folders(workspace))
                took = time.monotonic() - t0
                print(f"{args.sessions} sessions x {args.mb:g} MB in {took:.0f} s: {accepted} "
                      f"accepted, {refused} refused; {folders_open} upload folders")  # fmt: skip
                for ctx, _ in sessions:
                    ctx.close()
                browser.close()
            closed = time.monotonic()
            while upload_folders(workspace) and time.monotonic() - closed < args.wait:
                time.sleep(2)
            swept_s = time.monotonic() - closed
            time.sleep(5)
            after = rss(server.pid)
        finally:
            sampler.running = False
            server.terminate()
            server.wait(20)
        left = upload_folders(workspace)
        print(f"server RSS: start {start / MiB:.0f} MiB, peak {sampler.peak / MiB:.0f} MiB, "
              f"imports done (sessions open) {imported / MiB:.0f} MiB, after they closed "
              f"{after / MiB:.0f} MiB ({(after - start) / MiB:+.0f} MiB)")  # fmt: skip
        print(f"upload folders left {len(left)} ({swept_s:.0f} s after the sessions closed)")
        ok = (after - start) < 200 * MiB and not left
        print("PASS" if ok else "FAIL: over 200 MiB retained or folders left")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
