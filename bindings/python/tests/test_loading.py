"""Finding libturn: a TURN_LIBRARY that does not load, or no library
anywhere, is an ImportError that says what was tried."""

import os
import subprocess
import sys

import pytest

from turn import _ffi

PACKAGE_ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_a_bad_turn_library_names_it_and_the_path(monkeypatch, tmp_path):
    missing = str(tmp_path / "nowhere" / "libturn.so")
    monkeypatch.setenv("TURN_LIBRARY", missing)
    with pytest.raises(ImportError) as caught:
        _ffi.load()
    text = str(caught.value)
    assert "TURN_LIBRARY=" + missing in text, text
    assert caught.value.path == missing
    assert isinstance(caught.value.__cause__, OSError)

    # A file that is there but is no library.
    junk = tmp_path / "libturn.so"
    junk.write_text("not a library")
    monkeypatch.setenv("TURN_LIBRARY", str(junk))
    with pytest.raises(ImportError) as caught:
        _ffi.load()
    assert "TURN_LIBRARY=" + str(junk) in str(caught.value), str(caught.value)


def test_import_turn_says_so(tmp_path):
    missing = str(tmp_path / "libturn.so")
    env = dict(os.environ, TURN_LIBRARY=missing, PYTHONPATH=os.path.abspath(PACKAGE_ROOT))
    run = subprocess.run([sys.executable, "-c", "import turn"], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: cannot load libturn from TURN_LIBRARY=" + missing), last


def test_without_turn_library_the_places_tried_are_named(monkeypatch, tmp_path):
    monkeypatch.delenv("TURN_LIBRARY", raising=False)
    monkeypatch.setattr(_ffi, "_package_dir", lambda: str(tmp_path))
    monkeypatch.setattr(_ffi.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(_ffi, "SONAME", "libturn-not-installed.so.0")
    with pytest.raises(ImportError) as caught:
        _ffi.load()
    text = str(caught.value)
    assert "TURN_LIBRARY is not set" in text, text
    assert str(tmp_path) in text, text
    assert "libturn-not-installed.so.0" in text, text


def test_turn_library_is_what_is_loaded(monkeypatch):
    path = os.environ.get("TURN_LIBRARY")
    if not path:
        pytest.skip("TURN_LIBRARY is not set")
    assert _ffi.library_path() == path
    lib = _ffi.load()
    assert lib.turn_version().decode()
