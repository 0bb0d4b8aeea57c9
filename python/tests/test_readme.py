# SPDX-License-Identifier: Apache-2.0
"""The quick start of python/README.md, run as written on the mount (its
/mnt/vexfs replaced by a folder of the scratch mount), as a program."""

import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_the_quick_start_runs_as_written(mount, tmp_path):
    with open(README) as f:
        blocks = re.findall(r"^```python\n(.*?)^```", f.read(), re.MULTILINE | re.DOTALL)
    assert blocks, "no python block in the README"
    quick_start = blocks[0]
    assert quick_start.count("/mnt/vexfs") == 1
    folder = os.path.join(mount, "readme")
    os.makedirs(folder, exist_ok=True)
    program = tmp_path / "quick_start.py"
    program.write_text(quick_start.replace("/mnt/vexfs", folder))
    done = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "match" in done.stdout
