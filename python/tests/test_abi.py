# SPDX-License-Identifier: Apache-2.0
"""The ctypes layout in vexfs/_abi.py against the C header: a C program
compiled against uapi/include/vexfs_v2_uapi.h prints every struct size,
field offset and request number, and each must match."""

import ctypes
import os
import shutil
import subprocess
import tempfile

import pytest

from vexfs import _abi

HEADER_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "uapi", "include")


def c_layout():
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to compile the header with")
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "vexfs_v2_uapi.h"',
             "int main(void) {"]
    for name, struct in _abi.STRUCTS.items():
        lines.append(f'printf("size {name} %zu\\n", sizeof(struct {name}));')
        for field, _ in struct._fields_:
            lines.append(f'printf("offset {name}.{field} %zu\\n", offsetof(struct {name}, {field}));')
    for name in _abi.REQUESTS:
        lines.append(f'printf("request {name} %lu\\n", (unsigned long){name});')
    lines.append("return 0; }")
    with tempfile.TemporaryDirectory() as scratch:
        source = os.path.join(scratch, "layout.c")
        program = os.path.join(scratch, "layout")
        with open(source, "w") as f:
            f.write("\n".join(lines))
        subprocess.run([compiler, "-I", HEADER_DIR, source, "-o", program], check=True)
        out = subprocess.run([program], check=True, capture_output=True, text=True).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_structs_and_requests_match_the_header():
    layout = c_layout()
    for name, struct in _abi.STRUCTS.items():
        assert int(layout[f"size {name}"]) == ctypes.sizeof(struct), name
        for field, _ in struct._fields_:
            assert int(layout[f"offset {name}.{field}"]) == getattr(struct, field).offset, \
                f"{name}.{field}"
    for name, number in _abi.REQUESTS.items():
        assert int(layout[f"request {name}"]) == number, name
