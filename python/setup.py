"""Builds libjitrt from the repository this directory belongs to and ships it
inside the ``jitrt`` package (as ``jitrt/libjitrt.so``).

setuptools-rust runs ``cargo rustc --lib --crate-type cdylib --profile wheel``
on ``../Cargo.toml`` (cargo's target directory: ``CARGO_TARGET_DIR``, else the
repository's ``target/``), strips the debug info, and copies the library into
the package. The version is read from ``../Cargo.toml``: it is written there
only. The wheel holds no Python extension module, only a library loaded with
ctypes, so it is tagged ``py3-none-<platform>``: any Python 3, this platform.
"""

import os
import re

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools_rust import Binding, RustExtension, Strip, build_rust

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "..", "Cargo.toml")


def cargo_version():
    """The ``version`` of Cargo.toml's ``[package]`` table."""
    try:
        with open(MANIFEST, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SystemExit(
            "jitrt: cannot read %s (%s): build from a checkout of the libjitrt "
            "repository, e.g. `pip install ./python` at its root" % (MANIFEST, e.strerror)
        )
    package = re.search(r"^\[package\][ \t]*\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    version = package and re.search(r'^version\s*=\s*"([^"]+)"', package.group(1), re.M)
    if not version:
        raise SystemExit("jitrt: no version in the [package] table of %s" % MANIFEST)
    return version.group(1)


VERSION = cargo_version()


class BuildRust(build_rust):
    """Installs the library as ``jitrt/libjitrt.so`` (the name ``jitrt``
    loads), not under a Python extension module's name."""

    def get_dylib_ext_path(self, ext, target_fname):
        path = super().get_dylib_ext_path(ext, target_fname)
        return os.path.join(os.path.dirname(path), "libjitrt.so")


class BdistWheel(bdist_wheel):
    """Tags the wheel py3-none-PLATFORM: no extension module, one native
    library for this platform."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    version=VERSION,
    rust_extensions=[
        RustExtension(
            "jitrt.libjitrt",
            path=MANIFEST,
            binding=Binding.NoBinding,
            args=["--profile", "wheel"],
            strip=Strip.Debug,
        )
    ],
    cmdclass={"build_rust": BuildRust, "bdist_wheel": BdistWheel},
)
