"""The limits include/turn.h states for the options and the names, at
their edges: within them TURN_OK, past them TURN_ERR_INVALID_ARGUMENT
(no Redis needed: each is checked before any round trip)."""

import ctypes

import pytest

import turn

OK, INVALID = 0, 2
DAY_MS = 86_400_000


@pytest.fixture
def options():
    lib = turn._lib
    handle = ctypes.c_void_p()
    assert lib.turn_options_new(ctypes.byref(handle)) == OK
    yield lib, handle
    lib.turn_options_free(handle)


def test_timeouts_are_1_ms_to_a_day(options):
    lib, o = options
    for setter in (lib.turn_options_set_connect_timeout_ms, lib.turn_options_set_command_timeout_ms):
        assert setter(o, 0) == INVALID
        assert setter(o, DAY_MS + 1) == INVALID
        assert setter(o, 0xFFFFFFFF) == INVALID
        assert setter(o, DAY_MS) == OK
        assert setter(o, 1) == OK
        assert setter(o, 5000) == OK


def test_pool_size_and_prefix(options):
    lib, o = options
    assert lib.turn_options_set_pool_size(o, 0) == INVALID
    assert lib.turn_options_set_pool_size(o, 1025) == INVALID
    assert lib.turn_options_set_pool_size(o, 1024) == OK
    assert lib.turn_options_set_prefix(o, b"p" * 256) == OK
    assert lib.turn_options_set_prefix(o, b"p" * 257) == INVALID
    assert lib.turn_options_set_prefix(o, b"") == INVALID
    assert lib.turn_options_set_prefix(o, b"a\nb") == INVALID
    assert lib.turn_options_set_prefix(o, b"\xff") == INVALID


def test_the_replica_timeout_stays_below_the_command_timeout(options):
    lib, o = options
    assert lib.turn_options_set_command_timeout_ms(o, 5000) == OK
    assert lib.turn_options_set_min_replicas(o, 1, 0) == INVALID
    assert lib.turn_options_set_min_replicas(o, 1, 5000) == INVALID
    assert lib.turn_options_set_min_replicas(o, 0, 0) == OK
    assert lib.turn_options_set_min_replicas(o, 1, 4999) == OK
    # Now the command timeout may not come down to it.
    assert lib.turn_options_set_command_timeout_ms(o, 4999) == INVALID
    assert lib.turn_options_set_command_timeout_ms(o, 5000) == OK


def test_names_and_lease(url):
    lib = turn._lib
    locker = ctypes.c_void_p()
    assert lib.turn_locker_new(url.encode(), ctypes.byref(locker)) == OK
    try:
        status = ctypes.c_void_p()
        indicator = ctypes.c_uint64()
        lock = ctypes.c_void_p()
        for resource in (b"", b"r" * 1025, b"a\x01b"):
            assert lib.turn_status_get(locker, resource, ctypes.byref(status)) == INVALID
            assert lib.turn_bump(locker, resource, ctypes.byref(indicator)) == INVALID
            assert lib.turn_reset(locker, resource) == INVALID
            assert lib.turn_announce(locker, resource, b"line") == INVALID
            assert lib.turn_lock_acquire(locker, resource, b"", 0, 0, 0, ctypes.byref(lock)) == INVALID
        assert lib.turn_lock_acquire(locker, b"limits", b"x" * 4097, 0, 0, 0, ctypes.byref(lock)) == INVALID
        assert lib.turn_lock_acquire(locker, b"limits", b"", 99, 0, 0, ctypes.byref(lock)) == INVALID
        assert lib.turn_lock_acquire(locker, b"limits", b"x" * 4096, 100, 0, 0, ctypes.byref(lock)) == OK
        assert lib.turn_lock_release(lock) == OK
    finally:
        lib.turn_locker_free(locker)
