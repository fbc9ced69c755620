"""The C ABI of libturn, declared for ctypes (one entry per function of
include/turn.h; tests/test_header.py checks that they agree)."""

import ctypes
import ctypes.util
import glob
import os
from typing import Any, List, Optional

c_int, c_char_p, c_void_p = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
c_uint32, c_int32, c_int64, c_uint64 = ctypes.c_uint32, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64
c_size_t = ctypes.c_size_t
P = ctypes.POINTER

# turn_log_fn: void (*)(void *context, int level, const char *message).
LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)

# name: (restype, argtypes). Handles are opaque pointers (c_void_p);
# turn_result is an int-sized enum.
PROTOTYPES = {
    "turn_locker_new": (c_int, [c_char_p, P(c_void_p)]),
    "turn_locker_new_with_options": (c_int, [c_char_p, c_void_p, P(c_void_p)]),
    "turn_locker_free": (None, [c_void_p]),
    "turn_lock_acquire": (c_int, [c_void_p, c_char_p, c_char_p, c_uint32, c_uint32, c_int64, P(c_void_p)]),
    "turn_lock_acquire_cancelable": (
        c_int, [c_void_p, c_char_p, c_char_p, c_uint32, c_uint32, c_int64, c_void_p, P(c_void_p)]),
    "turn_cancel_new": (c_int, [P(c_void_p)]),
    "turn_cancel_fire": (c_int, [c_void_p]),
    "turn_cancel_free": (None, [c_void_p]),
    "turn_lock_release": (c_int, [c_void_p]),
    "turn_lock_serial": (c_uint64, [c_void_p]),
    "turn_lock_token": (c_int, [c_void_p, P(c_uint64)]),
    "turn_locker_health": (c_int, [c_void_p]),
    "turn_locker_metrics": (c_int, [c_void_p, c_char_p, c_size_t, P(c_size_t)]),
    "turn_lock_check": (c_int, [c_void_p]),
    "turn_lock_lost_fd": (c_int, [c_void_p]),
    "turn_acquire_start": (c_int, [c_void_p, c_char_p, c_char_p, c_uint32, c_uint32, c_int64, P(c_void_p)]),
    "turn_pending_fd": (c_int, [c_void_p]),
    "turn_pending_finish": (c_int, [c_void_p, P(c_void_p)]),
    "turn_pending_cancel": (c_int, [c_void_p]),
    "turn_pending_position": (c_int, [c_void_p, P(c_uint64)]),
    "turn_semaphore_acquire": (
        c_int, [c_void_p, c_char_p, c_char_p, c_uint32, c_uint32, c_int64, c_int64, c_int64, P(c_void_p)]),
    "turn_semaphore_start": (
        c_int, [c_void_p, c_char_p, c_char_p, c_uint32, c_uint32, c_int64, c_int64, c_int64, P(c_void_p)]),
    "turn_rwlock_acquire": (
        c_int, [c_void_p, c_char_p, c_char_p, c_int, c_int64, c_int64, c_int64, P(c_void_p)]),
    "turn_rwlock_start": (
        c_int, [c_void_p, c_char_p, c_char_p, c_int, c_int64, c_int64, c_int64, P(c_void_p)]),
    "turn_lock_acquire_all": (
        c_int, [c_void_p, P(c_char_p), c_size_t, c_char_p, c_int64, c_int64, c_int64, P(c_void_p)]),
    "turn_lock_acquire_all_cancelable": (
        c_int, [c_void_p, P(c_char_p), c_size_t, c_char_p, c_int64, c_int64, c_int64, c_void_p,
                P(c_void_p)]),
    "turn_status_get": (c_int, [c_void_p, c_char_p, P(c_void_p)]),
    "turn_status_indicator": (c_uint64, [c_void_p]),
    "turn_status_dispenser": (c_uint64, [c_void_p]),
    "turn_status_len": (c_size_t, [c_void_p]),
    "turn_status_serial_at": (c_uint64, [c_void_p, c_size_t]),
    "turn_status_label_at": (c_char_p, [c_void_p, c_size_t]),
    "turn_status_kind": (c_int, [c_void_p]),
    "turn_status_permits": (c_uint32, [c_void_p]),
    "turn_status_held_at": (c_int, [c_void_p, c_size_t]),
    "turn_status_weight_at": (c_uint32, [c_void_p, c_size_t]),
    "turn_status_exclusive_at": (c_int, [c_void_p, c_size_t]),
    "turn_status_ours_at": (c_int, [c_void_p, c_size_t]),
    "turn_status_token_at": (c_uint64, [c_void_p, c_size_t]),
    "turn_status_age_ms_at": (c_int64, [c_void_p, c_size_t]),
    "turn_status_lease_left_ms_at": (c_int64, [c_void_p, c_size_t]),
    "turn_status_position_at": (c_uint64, [c_void_p, c_size_t]),
    "turn_status_free": (None, [c_void_p]),
    "turn_bump": (c_int, [c_void_p, c_char_p, P(c_uint64)]),
    "turn_announce": (c_int, [c_void_p, c_char_p, c_char_p]),
    "turn_reset": (c_int, [c_void_p, c_char_p]),
    "turn_result_str": (c_char_p, [c_int]),
    "turn_last_error": (c_char_p, []),
    "turn_version": (c_char_p, []),
    "turn_options_new": (c_int, [P(c_void_p)]),
    "turn_options_free": (None, [c_void_p]),
    "turn_options_set_prefix": (c_int, [c_void_p, c_char_p]),
    "turn_options_set_connect_timeout_ms": (c_int, [c_void_p, c_uint32]),
    "turn_options_set_command_timeout_ms": (c_int, [c_void_p, c_uint32]),
    "turn_options_set_pool_size": (c_int, [c_void_p, c_uint32]),
    "turn_options_set_grace_ms": (c_int, [c_void_p, c_uint32]),
    "turn_options_set_clock_serials": (c_int, [c_void_p, c_int32]),
    "turn_options_set_tls": (c_int, [c_void_p, c_char_p, c_char_p, c_char_p]),
    "turn_options_set_min_replicas": (c_int, [c_void_p, c_uint32, c_uint32]),
    "turn_set_log_callback": (c_int, [LOG_FN, c_void_p]),
}


# The library's soname: what the dynamic linker is asked for last.
SONAME = "libturn.so.0"


def _package_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def _next_to_package() -> List[str]:
    """The libraries in this package's directory, in the order they are
    tried: the one pip built into it (``_libturn*.so``), then a libturn
    put there by hand."""
    here = _package_dir()
    bundled = sorted(glob.glob(os.path.join(here, "_libturn*.so")) +
                     glob.glob(os.path.join(here, "_libturn*.dylib")))
    by_hand = [os.path.join(here, name) for name in ("libturn.so", "libturn.so.0", "libturn.dylib")]
    return bundled + [p for p in by_hand if os.path.exists(p)]


def library_path() -> str:
    """TURN_LIBRARY, else the library pip built into this package
    (``_libturn*.so``), else a libturn next to this package, else the
    system's."""
    path = os.environ.get("TURN_LIBRARY")
    if path:
        return path
    found = _next_to_package()
    if found:
        return found[0]
    return ctypes.util.find_library("turn") or SONAME


def _declared(lib: Any, path: str) -> Any:
    """`lib` with every function declared; ImportError naming `path` when
    one is missing (an older libturn)."""
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError(
                "the libturn loaded from %s has no %s: an older library than this "
                "package (set TURN_LIBRARY=/path/to/libturn.so to choose one)" % (path, name),
                name="turn", path=path) from None
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def load(path: Optional[str] = None) -> Any:
    """Loads libturn and declares every function. CDLL releases the GIL
    during each call, so a blocking acquire lets other threads run.

    The library is `path`, else TURN_LIBRARY (nothing else is tried when it
    is set), else the first that loads of: the library pip built into this
    package, a libturn next to it, the system's (``ctypes.util.find_library``,
    then the soname through the dynamic linker: LD_LIBRARY_PATH, the
    ldconfig cache, the default directories). When none loads, an
    ImportError says which were tried and why each failed."""
    if path:
        return _declared(ctypes.CDLL(path), path)
    named = os.environ.get("TURN_LIBRARY")
    if named:
        try:
            lib = ctypes.CDLL(named)
        except OSError as e:
            raise ImportError(
                "cannot load libturn from TURN_LIBRARY=%s: %s. Point TURN_LIBRARY at a "
                "libturn.so (target/release/libturn.so in a build tree), or unset it to "
                "use the library pip built into this package or the system's" % (named, e),
                name="turn", path=named) from e
        return _declared(lib, named)
    tried = []
    here = _package_dir()
    found = _next_to_package()
    if not found:
        tried.append("%s: no _libturn*.so (pip install builds one there), libturn.so, "
                     "libturn.so.0 or libturn.dylib" % here)
    system = ctypes.util.find_library("turn")
    names = found + [n for n in (system, SONAME) if n and n not in found]
    for name in dict.fromkeys(names):
        try:
            return _declared(ctypes.CDLL(name), name)
        except OSError as e:
            tried.append("%s: %s" % (name, e))
    raise ImportError(
        "cannot load libturn: TURN_LIBRARY is not set, and none of these loaded: %s "
        "(the dynamic linker searches LD_LIBRARY_PATH, the ldconfig cache and the default "
        "directories). Set TURN_LIBRARY=/path/to/libturn.so, pip install the package "
        "(it builds the library into it), or install the library where the dynamic "
        "linker finds it (make install; as root it runs ldconfig)" % "; ".join(tried),
        name="turn")
