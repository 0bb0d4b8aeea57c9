# SPDX-License-Identifier: Apache-2.0
"""A scratch VexFS mounted for the tests: formatted, mounted through the
`vexfs` binary, unmounted (and its image removed) at the end, also when a
test fails. Skips with a message without root or /dev/fuse.

`mount` is one mount for the whole session; `remountable` is a mount of
its own for a test that unmounts and mounts again to see what persisted."""

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


class ScratchMount:
    """An image in a scratch folder under /var/tmp, mounted at `point`."""

    def __init__(self, binary):
        self.binary = binary
        self.scratch = tempfile.mkdtemp(prefix="vexfs-python-", dir="/var/tmp")
        self.image = os.path.join(self.scratch, "image")
        self.point = os.path.join(self.scratch, "mnt")
        self.mounted = False
        os.mkdir(self.point)
        try:
            subprocess.run([binary, "mkfs", self.image, "--size", "256M"], check=True,
                           capture_output=True)
            self.mount()
        except BaseException:
            self.remove()
            raise

    def mount(self):
        subprocess.run([self.binary, "mount", self.image, self.point], check=True,
                       capture_output=True)
        self.mounted = True

    def unmount(self):
        """Unmounts; the daemon writes back and exits at unmount, and fsck
        says it left the image clean."""
        subprocess.run(["umount", self.point], check=False)
        self.mounted = False
        check = subprocess.run([self.binary, "fsck", self.image], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr

    def remount(self):
        self.unmount()
        self.mount()

    def remove(self):
        try:
            if self.mounted:
                self.unmount()
        finally:
            if os.path.exists(self.image):
                os.remove(self.image)
            os.rmdir(self.point)
            os.rmdir(self.scratch)


def scratch_mount():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("mounting VexFS needs root and /dev/fuse")
    binary = vexfs_binary()
    if binary is None:
        pytest.skip("no vexfs binary: build it (cargo build) or set VEXFS_BIN")
    return ScratchMount(binary)


@pytest.fixture(scope="session")
def mount():
    scratch = scratch_mount()
    try:
        yield scratch.point
    finally:
        scratch.remove()


@pytest.fixture
def remountable():
    scratch = scratch_mount()
    try:
        yield scratch
    finally:
        scratch.remove()
