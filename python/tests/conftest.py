"""Fixtures: a C compiler that writes objects into pytest's tmp dir, and a
session that is closed after each test."""

import os
import shlex
import subprocess
import sys

import pytest

# Import the package from this checkout (python/jitrt), whatever the cwd.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jitrt  # noqa: E402


@pytest.fixture
def compile_c(tmp_path):
    """compile_c(source, name="obj", flags=()) -> path of NAME.o, built with
    `$CC -c` (default cc) in the test's tmp dir."""

    def compile(source, name="obj", flags=()):
        src = tmp_path / (name + ".c")
        obj = tmp_path / (name + ".o")
        src.write_text(source)
        cc = shlex.split(os.environ.get("CC") or "cc")
        subprocess.run(cc + list(flags) + ["-c", str(src), "-o", str(obj)], check=True)
        return str(obj)

    return compile


@pytest.fixture
def session():
    with jitrt.Session() as s:
        yield s
