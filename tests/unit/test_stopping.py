"""The console script's stop: what it leaves in place when the interpreter exits."""

from __future__ import annotations

import subprocess
import sys

# Registered before the stop is installed, this exit handler runs after the stop's own
# (exit handlers run last-registered first) and reports the signals' dispositions then.
SCRIPT = """
import atexit, signal
atexit.register(lambda: print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN,
                              signal.getsignal(signal.SIGINT) is signal.SIG_IGN))
from tap_braze_series import stopping
stopping.install()
"""


def test_signals_are_ignored_once_the_run_exits():
    # The interpreter's finalisation resets handled signals to their default action, which
    # kills: a SIGTERM then would turn a finished run into one that exits as killed.
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "True"], done.stdout + done.stderr
