"""The C ABI of libturn, declared for ctypes (one entry per function of
include/turn.h; tests/test_header.py checks that they agree)."""

import ctypes
import ctypes.util
import glob
import os

c_int, c_char_p, c_void_p = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
c_uint32, c_int32, c_int64, c_uint64 = ctypes.c_uint32, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64
c_size_t = ctypes.c_size_t
P = ctypes.POINTER

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
    "turn_lock_check": (c_int, [c_void_p]),
    "turn_lock_lost_fd": (c_int, [c_void_p]),
    "turn_acquire_start": (c_int, [c_void_p, c_char_p, c_char_p, c_uint32, c_uint32, c_int64, P(c_void_p)]),
    "turn_pending_fd": (c_int, [c_void_p]),
    "turn_pending_finish": (c_int, [c_void_p, P(c_void_p)]),
    "turn_pending_cancel": (c_int, [c_void_p]),
    "turn_pending_position": (c_int, [c_void_p, P(c_uint64)]),
    "turn_status_get": (c_int, [c_void_p, c_char_p, P(c_void_p)]),
    "turn_status_indicator": (c_uint64, [c_void_p]),
    "turn_status_dispenser": (c_uint64, [c_void_p]),
    "turn_status_len": (c_size_t, [c_void_p]),
    "turn_status_serial_at": (c_uint64, [c_void_p, c_size_t]),
    "turn_status_label_at": (c_char_p, [c_void_p, c_size_t]),
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
}


def library_path():
    """TURN_LIBRARY, else the library pip built into this package
    (``_libturn*.so``), else a libturn next to this package, else the
    system's."""
    path = os.environ.get("TURN_LIBRARY")
    if path:
        return path
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = sorted(glob.glob(os.path.join(here, "_libturn*.so")) +
                     glob.glob(os.path.join(here, "_libturn*.dylib")))
    if bundled:
        return bundled[0]
    for name in ("libturn.so", "libturn.so.0", "libturn.dylib"):
        candidate = os.path.join(here, name)
        if os.path.exists(candidate):
            return candidate
    return ctypes.util.find_library("turn") or "libturn.so.0"


def load(path=None):
    """Loads libturn and declares every function. CDLL releases the GIL
    during each call, so a blocking acquire lets other threads run."""
    lib = ctypes.CDLL(path or library_path())
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib
