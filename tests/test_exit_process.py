"""ground_r1.distributed.exit_process: a multi-process run ends without the interpreter teardown (where a native
communication thread aborted a finished rank with SIGABRT), with its output flushed; a single process exits normally."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import atexit, logging, sys
from ground_r1.distributed import exit_process
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
atexit.register(lambda: print("teardown ran", flush=True))
print("result written")          # buffered: exit_process must flush it
logging.getLogger("x").info("last log line")
exit_process(3)
"""


@pytest.mark.parametrize("world_size, teardown", [("2", False), ("1", True), (None, True)])
def test_exit_process_skips_the_teardown_only_under_several_processes(world_size, teardown):
    env = {k: v for k, v in os.environ.items() if k != "WORLD_SIZE"}
    if world_size is not None:
        env["WORLD_SIZE"] = world_size
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stdout.startswith("result written\n") and ("teardown ran" in proc.stdout) == teardown
    assert "last log line" in proc.stderr
