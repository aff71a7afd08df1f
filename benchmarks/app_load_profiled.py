"""``streamlit run`` with every script run profiled: where the server's time per move goes.

``app_load.py --profile`` starts the server through this file instead of ``-m streamlit``:
each script run (a whole page or a fragment) runs under its own ``cProfile`` timed by its
thread's CPU clock (``time.thread_time``: what that run cost, not the time it waited for
the other sessions' runs), and the runs are merged into one ``pstats`` file at
``APP_LOAD_PROFILE``, written (temp + rename) every 20 runs and at exit. Nothing in the app
knows: only this process's ``ScriptRunner._run_script`` is wrapped.

    APP_LOAD_PROFILE=out.pstats python benchmarks/app_load_profiled.py run app.py [options]
"""

from __future__ import annotations

import atexit
import cProfile
import os
import pstats
import sys
import threading
import time
from pathlib import Path

from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
from streamlit.web import cli

OUT = Path(os.environ.get("APP_LOAD_PROFILE", "app-load-profile.pstats"))
EVERY = 20  # runs between writes
_lock = threading.Lock()
_merged: list[pstats.Stats] = []  # one Stats, once the first run is done
_runs = [0]


def _write() -> None:
    with _lock:
        if not _merged:
            return
        tmp = OUT.with_suffix(".tmp")
        _merged[0].dump_stats(tmp)
        os.replace(tmp, OUT)


def _profiled(run_script):
    def run(self, rerun_data):
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        try:
            return run_script(self, rerun_data)
        finally:
            profile.disable()
            with _lock:
                if _merged:
                    _merged[0].add(profile)
                else:
                    _merged.append(pstats.Stats(profile))
                _runs[0] += 1
                due = _runs[0] % EVERY == 0
            if due:
                _write()

    return run


if __name__ == "__main__":
    ScriptRunner._run_script = _profiled(ScriptRunner._run_script)
    atexit.register(_write)
    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(cli.main())
