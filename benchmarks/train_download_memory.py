"""The server's memory when the Train page shows a large checkpoint and when its zip is
downloaded (issue 23, finding 2): viewing must cost nothing, a download only while it is served,
and nothing stay after the session leaves.

A real ``streamlit run app.py`` on a temporary workspace: the shipped checkpoint and a copy
of it, ``big``, whose ``model.pt`` is ``--mb`` MB of random bytes (incompressible, as trained
weights nearly are; the page's reconstructions then say they cannot load it, the download is
still offered). One chromium session opens Train on ``big`` ``--views`` times (leaving for
Home in between), then clicks "Download checkpoint big.zip" and waits for the file, then
closes. Prints the server's RSS at start (after a warm-up session on Home), after the views,
the peak during them, the peak during the download, and ``--after`` seconds after the
session closed (the sweeper lets Streamlit forget a served download within two rounds).
``--tree DIR`` serves another copy of the app (``git archive 6458178`` unpacked) to compare.

    .venv/bin/python benchmarks/train_download_memory.py --mb 300
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from upload_sessions import MiB, Sampler, rss, start_server  # puts the repository on the path

from tests.browser import (
    BROWSER_ARGS,
    CHROMIUM,
    ROOT,
    free_port,
    key,
    settle,
    with_shipped_checkpoint,
)


def go(page, title: str, heading: str | None = None) -> None:
    """Click ``title`` in the sidebar; wait for its ``heading`` and the run to end."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    page.wait_for_selector(f"h1:has-text('{heading or title}')")
    settle(page, timeout=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="size of big/model.pt")
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the app to serve")
    parser.add_argument("--after", type=float, default=75.0, help="seconds after closing")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="vae-train-dl-") as tmp:
        workspace = Path(tmp) / "work"
        workspace.mkdir()
        shipped = with_shipped_checkpoint(workspace)
        big = workspace / "checkpoints" / "big"
        shutil.copytree(shipped, big, ignore=shutil.ignore_patterns("judge"))
        with (big / "model.pt").open("wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(MiB))
        demo = Path(tmp) / "demo"  # the page needs a dataset: ten clips
        for cmd in (
            ["demo-data", str(demo), "--per-class", "2"],
            ["preprocess", str(demo), "--out", str(workspace / "data" / "demo")],
        ):
            subprocess.run([sys.executable, "-m", "vae", *cmd], cwd=ROOT, check=True,
                           capture_output=True)  # fmt: skip
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(workspace, port, args.tree.resolve())
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
                ctx = browser.new_context(accept_downloads=True)
                page = ctx.new_page()
                page.set_default_timeout(int(os.environ.get("BENCH_TIMEOUT_MS", "600000")))
                page.goto(url)
                page.wait_for_selector("h1:has-text('Sound VAE Studio')")
                settle(page)
                start = rss(server.pid)
                views = Sampler(server.pid)
                views.start()
                for i in range(args.views):
                    go(page, "Train")
                    if i == 0:
                        field = page.locator(f"{key('train-folder')} input")
                        field.fill("big")
                        field.press("Enter")
                        settle(page, timeout=600)
                    page.locator(f"{key('train-download')} button").wait_for()
                    if i < args.views - 1:
                        go(page, "Home", "Sound VAE Studio")
                viewed = rss(server.pid)
                views.running = False
                click = Sampler(server.pid)
                click.start()
                t0 = time.monotonic()
                with page.expect_download(timeout=600_000) as download:
                    page.locator(f"{key('train-download')} button").click()
                size = Path(download.value.path()).stat().st_size
                took = time.monotonic() - t0
                settle(page, timeout=600)
                clicked = rss(server.pid)
                click.running = False
                ctx.close()
                browser.close()
            time.sleep(args.after)
            after = rss(server.pid)
        finally:
            server.terminate()
            server.wait(20)
    print(f"app {args.tree}; big/model.pt {args.mb} MB; zip {size / MiB:.0f} MiB in {took:.0f} s")
    print(f"server RSS: start {start / MiB:.0f} MiB; {args.views} views of Train: peak "
          f"{views.peak / MiB:.0f}, after {viewed / MiB:.0f} ({(viewed - start) / MiB:+.0f}); "
          f"download: peak {click.peak / MiB:.0f}, after {clicked / MiB:.0f}; session closed: "
          f"{after / MiB:.0f} MiB ({(after - start) / MiB:+.0f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
