# SPDX-License-Identifier: Apache-2.0
"""A scratch VexFS mounted for the tests: formatted, mounted through the
`vexfs` binary, unmounted (and its image removed) at the end, also when a
test fails. Skips with a message without root or /dev/fuse."""

import os
import subprocess
import tempfile

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def vexfs_binary():
    given = os.environ.get("VEXFS_BIN")
    if given:
        return given
    for profile in ("debug", "release"):
        path = os.path.join(ROOT, "target", profile, "vexfs")
        if os.path.exists(path):
            return path
    return None


@pytest.fixture(scope="session")
def mount():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("mounting VexFS needs root and /dev/fuse")
    binary = vexfs_binary()
    if binary is None:
        pytest.skip("no vexfs binary: build it (cargo build) or set VEXFS_BIN")
    scratch = tempfile.mkdtemp(prefix="vexfs-python-", dir="/var/tmp")
    image = os.path.join(scratch, "image")
    point = os.path.join(scratch, "mnt")
    os.mkdir(point)
    subprocess.run([binary, "mkfs", image, "--size", "256M"], check=True,
                   capture_output=True)
    subprocess.run([binary, "mount", image, point], check=True, capture_output=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", point], check=False)
        # The daemon writes back and exits at unmount; fsck says it left the image clean.
        check = subprocess.run([binary, "fsck", image], capture_output=True, text=True)
        os.remove(image)
        os.rmdir(point)
        os.rmdir(scratch)
        assert check.returncode == 0, check.stdout + check.stderr
