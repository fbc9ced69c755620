"""The package's annotations: mypy --strict accepts the package and a
program using its whole public API (tests/typed_program.py), with the
package found through its py.typed marker."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)


@pytest.fixture(scope="module")
def mypy(tmp_path_factory):
    """Runs mypy --strict on its arguments from the package's directory,
    with its cache outside the tree (shared by this module's tests);
    returns its exit code and output."""
    pytest.importorskip("mypy", reason="mypy is not installed (tests/bindings.rs installs it)")
    cache = str(tmp_path_factory.mktemp("mypy-cache"))

    def run(*targets):
        out = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache, *targets],
            cwd=PACKAGE, capture_output=True, text=True)
        return out.returncode, out.stdout + out.stderr
    return run


def test_package_has_a_py_typed_marker():
    assert os.path.isfile(os.path.join(PACKAGE, "turn", "py.typed"))


def test_mypy_strict_accepts_the_package(mypy):
    code, out = mypy("-p", "turn")
    assert code == 0 and "Success" in out, out


def test_mypy_strict_accepts_a_program_using_the_whole_api(mypy):
    code, out = mypy(os.path.join(HERE, "typed_program.py"))
    assert code == 0 and "Success" in out, out


def test_mypy_strict_rejects_a_wrong_use(mypy, tmp_path):
    # The annotations say something: a status is not a Lock.
    bad = tmp_path / "typed_wrong.py"
    bad.write_text("import turn\n\n\ndef f(locker: turn.Locker) -> turn.Lock:\n"
                   "    return locker.status('x')\n")
    code, out = mypy(str(bad))
    assert code != 0 and "Incompatible return value type" in out, out
