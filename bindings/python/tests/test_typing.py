"""The package's annotations: mypy --strict accepts the package and a
program using its whole public API (tests/typed_program.py), with the
package found through its py.typed marker."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)


def _mypy(*targets):
    pytest.importorskip("mypy", reason="mypy is not installed (tests/bindings.rs installs it)")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *targets],
        cwd=PACKAGE, capture_output=True, text=True)
    return out.returncode, out.stdout + out.stderr


def test_package_has_a_py_typed_marker():
    assert os.path.isfile(os.path.join(PACKAGE, "turn", "py.typed"))


def test_mypy_strict_accepts_the_package():
    code, out = _mypy("-p", "turn")
    assert code == 0 and "Success" in out, out


def test_mypy_strict_accepts_a_program_using_the_whole_api():
    code, out = _mypy(os.path.join(HERE, "typed_program.py"))
    assert code == 0 and "Success" in out, out


def test_mypy_strict_rejects_a_wrong_use(tmp_path):
    # The annotations say something: a status is not a Lock.
    bad = tmp_path / "typed_wrong.py"
    bad.write_text("import turn\n\n\ndef f(locker: turn.Locker) -> turn.Lock:\n"
                   "    return locker.status('x')\n")
    code, out = _mypy(str(bad))
    assert code != 0 and "Incompatible return value type" in out, out
