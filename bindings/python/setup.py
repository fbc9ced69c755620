"""The library in the package, and the wheel's tag.

libturn, without the command-line tool's features, is built by cargo
through setuptools-rust (release profile: no debug info;
SETUPTOOLS_RUST_CARGO_PROFILE picks another, CARGO_TARGET_DIR where it
builds) into turn/_libturn*.so, loaded through ctypes. With
TURN_PREBUILT_LIBRARY=/path/to/libturn.so, that file is copied in instead
and cargo is not run (`make wheel` passes the release build's).

libturn is loaded through ctypes, not imported as an extension module, so
one wheel serves every Python 3 on its platform (py3-none-PLATFORM), not
only the interpreter that built it."""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

PREBUILT = os.environ.get("TURN_PREBUILT_LIBRARY")


class AnyPython3(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False  # it carries a platform's library

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class WithPrebuilt(build_py):
    """Copies TURN_PREBUILT_LIBRARY into the package as turn/_libturn.so."""

    def run(self):
        super().run()
        if PREBUILT:
            if not os.path.isfile(PREBUILT):
                raise SystemExit("TURN_PREBUILT_LIBRARY=%s: no such file" % PREBUILT)
            target = os.path.join(self.build_lib, "turn", "_libturn.so")
            shutil.copyfile(PREBUILT, target)
            os.chmod(target, 0o755)


class WithLibrary(Distribution):
    """A distribution that carries a platform's library (the wheel's files
    go to platlib, as auditwheel wants), also when it is copied in."""

    def has_ext_modules(self):
        return True


if PREBUILT:
    extensions = {}
else:
    from setuptools_rust import Binding, RustExtension

    extensions = {"rust_extensions": [RustExtension(
        "turn._libturn", path="../../Cargo.toml", binding=Binding.NoBinding,
        args=["--no-default-features"])]}

setup(distclass=WithLibrary, cmdclass={"bdist_wheel": AnyPython3, "build_py": WithPrebuilt},
      **extensions)
