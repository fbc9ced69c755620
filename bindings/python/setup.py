"""The wheel's tag: libturn is loaded through ctypes, not imported as an
extension module, so one wheel serves every Python 3 on its platform
(py3-none-PLATFORM), not only the interpreter that built it."""

from setuptools import setup

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel


class AnyPython3(bdist_wheel):
    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"bdist_wheel": AnyPython3})
