# SPDX-License-Identifier: Apache-2.0
"""examples/python/vexfs_collection.py, run as a user would, on the mount."""

import os
import subprocess
import sys

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python",
                       "vexfs_collection.py")


def test_the_collection_example_runs_and_says_ok(mount):
    done = subprocess.run([sys.executable, EXAMPLE, os.path.join(mount, "example.vec")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "OK"
    assert "recall 1.000" in done.stdout
