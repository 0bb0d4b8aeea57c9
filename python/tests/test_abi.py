# SPDX-License-Identifier: Apache-2.0
"""The ctypes layout in vexfs/_abi.py against the C header: a C program
compiled against uapi/include/vexfs_v2_uapi.h prints every struct size,
field offset, request number and constant, and each must match."""

import ctypes
import os
import re
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
    for name in _abi.CONSTANTS:
        lines.append(f'printf("constant {name} %llu\\n", (unsigned long long)({name}));')
    lines.append("return 0; }")
    with tempfile.TemporaryDirectory() as scratch:
        source = os.path.join(scratch, "layout.c")
        program = os.path.join(scratch, "layout")
        with open(source, "w") as f:
            f.write("\n".join(lines))
        subprocess.run([compiler, "-I", HEADER_DIR, source, "-o", program], check=True)
        out = subprocess.run([program], check=True, capture_output=True, text=True).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_structs_requests_and_constants_match_the_header():
    layout = c_layout()
    for name, struct in _abi.STRUCTS.items():
        assert int(layout[f"size {name}"]) == ctypes.sizeof(struct), name
        for field, _ in struct._fields_:
            assert int(layout[f"offset {name}.{field}"]) == getattr(struct, field).offset, \
                f"{name}.{field}"
    for name, number in _abi.REQUESTS.items():
        assert int(layout[f"request {name}"]) == number, name
    for name, value in _abi.CONSTANTS.items():
        assert int(layout[f"constant {name}"]) == value, name


def test_every_struct_and_request_of_the_header_is_mirrored():
    # A struct or request added to the header without its ctypes twin would
    # otherwise go unnoticed: the layout check above only walks _abi's lists.
    with open(os.path.join(HEADER_DIR, "vexfs_v2_uapi.h")) as f:
        header = f.read()
    structs = set(re.findall(r"^struct (vexfs_\w+) \{", header, re.MULTILINE))
    requests = set(re.findall(r"^#define (VEXFS_IOC_\w+) _IO", header, re.MULTILINE))
    assert structs == set(_abi.STRUCTS)
    assert requests == set(_abi.REQUESTS)
