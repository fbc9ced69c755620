"""turn: a FIFO, take-a-number lock for shared resources, kept in Redis.

The API of the Python package turn 1.0, over libturn (ctypes, no compiler
needed)::

    import turn

    locker = turn.Locker(host='localhost', port=6379, db=0)
    with locker.lock(resource='printer', label='report job') as lock:
        write(lock.token)  # a fencing token

The library is found through TURN_LIBRARY, next to this package, or on the
system's library path.
"""

import ctypes
import threading

from . import _ffi

__all__ = [
    "Locker", "Lock", "Status", "TurnError", "NullArgument", "InvalidArgument",
    "ConnectionFailed", "Timeout", "WouldBlock", "Lost", "Busy", "NotFound",
    "Forked", "ProtocolError", "Canceled", "Panic", "version",
]

_lib = _ffi.load()


class TurnError(Exception):
    """A failed call; `code` is the turn_result, `name` its name."""

    code = None

    def __init__(self, code, message):
        self.code = code
        self.name = _lib.turn_result_str(code).decode()
        super().__init__("%s: %s" % (self.name, message))


class NullArgument(TurnError): pass
class InvalidArgument(TurnError, ValueError): pass
class ConnectionFailed(TurnError, ConnectionError): pass
class Timeout(TurnError, TimeoutError): pass
class WouldBlock(TurnError): pass
class Lost(TurnError): pass
class Busy(TurnError): pass
class NotFound(TurnError, LookupError): pass
class Forked(TurnError): pass
class ProtocolError(TurnError): pass
class Canceled(TurnError): pass
class Panic(TurnError): pass


_ERRORS = {1: NullArgument, 2: InvalidArgument, 3: ConnectionFailed, 4: Timeout,
           5: WouldBlock, 6: Lost, 7: Busy, 8: NotFound, 9: Forked,
           10: ProtocolError, 11: Canceled, 99: Panic}


def _check(code):
    # turn_last_error is per thread, and this runs on the calling thread.
    if code != 0:
        detail = (_lib.turn_last_error() or b"").decode("utf-8", "replace")
        raise _ERRORS.get(code, TurnError)(code, detail)


def _text(value, what):
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise TypeError("%s must be str, not %s" % (what, type(value).__name__))
    return value.encode("utf-8")


def _millis(seconds, what):
    if seconds is None:
        return 0
    ms = int(round(float(seconds) * 1000))
    if ms < 0 or ms > 0xFFFFFFFF:
        raise ValueError("%s out of range: %r" % (what, seconds))
    return ms


def version():
    """The version of the loaded libturn."""
    return _lib.turn_version().decode()


class Status:
    """A snapshot of one queue: indicator, dispenser, and tickets, a list of
    (serial, label) pairs, ascending."""

    def __init__(self, resource, indicator, dispenser, tickets):
        self.resource, self.indicator, self.dispenser = resource, indicator, dispenser
        self.tickets = tickets

    def __repr__(self):
        return "Status(%r, indicator=%d, dispenser=%d, tickets=%r)" % (
            self.resource, self.indicator, self.dispenser, self.tickets)


class Lock:
    """A held lock. Release it (or leave its `with` block) when done."""

    def __init__(self, handle):
        self._handle = handle
        self._guard = threading.Lock()
        self.serial = _lib.turn_lock_serial(handle)
        token = ctypes.c_uint64()
        _check(_lib.turn_lock_token(handle, ctypes.byref(token)))
        #: The fencing token: greater than every earlier lock's on this
        #: resource, also across a Redis restart (``serial`` is the ticket
        #: number, turn 1.0's; it starts over when the queue does).
        self.token = token.value

    def check(self):
        """Raises Lost once the lock is lost (no round trip)."""
        with self._guard:
            if not self._handle:
                raise InvalidArgument(2, "released already")
            _check(_lib.turn_lock_check(self._handle))

    @property
    def held(self):
        """True while held."""
        with self._guard:
            return bool(self._handle) and _lib.turn_lock_check(self._handle) == 0

    def release(self):
        """Gives the turn to the next ticket; raises Lost when the lock had
        been lost."""
        with self._guard:
            handle, self._handle = self._handle, None
        if not handle:
            raise InvalidArgument(2, "released already")
        _check(_lib.turn_lock_release(handle))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._handle:
            self.release()
        return False

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            _lib.turn_lock_release(handle)


class _Pending:
    """What Locker.lock returns: acquires on entering the `with` block."""

    def __init__(self, locker, args):
        self._locker, self._args, self._lock = locker, args, None

    def __enter__(self):
        self._lock = self._locker.acquire(*self._args)
        return self._lock

    def __exit__(self, *exc):
        lock, self._lock = self._lock, None
        if lock is not None and lock._handle:
            lock.release()
        return False


class Locker:
    """A connection to Redis with the library's two background threads;
    share it between threads. Arguments as turn 1.0's (host, port, db,
    password), or a `url` (redis://, rediss://, unix://, redis+sentinel://);
    `prefix` for the key prefix; `tls_ca`, `tls_cert`, `tls_key` for
    rediss:// URLs."""

    def __init__(self, host="localhost", port=6379, db=0, password=None, url=None,
                 prefix="turn", clock_serials=False, tls_ca=None, tls_cert=None, tls_key=None):
        if url is None:
            auth = ""
            if password is not None:
                from urllib.parse import quote
                auth = ":%s@" % quote(str(password), safe="")
            url = "redis://%s%s:%d/%d" % (auth, host, int(port), int(db))
        opts = ctypes.c_void_p()
        _check(_lib.turn_options_new(ctypes.byref(opts)))
        try:
            _check(_lib.turn_options_set_prefix(opts, _text(prefix, "prefix")))
            _check(_lib.turn_options_set_clock_serials(opts, 1 if clock_serials else 0))
            if tls_ca or tls_cert or tls_key:
                _check(_lib.turn_options_set_tls(
                    opts, *[None if f is None else _text(str(f), "TLS file")
                            for f in (tls_ca, tls_cert, tls_key)]))
            handle = ctypes.c_void_p()
            _check(_lib.turn_locker_new_with_options(_text(url, "url"), opts, ctypes.byref(handle)))
        finally:
            _lib.turn_options_free(opts)
        self._handle = handle.value

    def close(self):
        """Stops the threads, releases locks still held, closes connections."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            _lib.turn_locker_free(handle)

    __del__ = close

    def health(self):
        """Raises Panic (with the count and the last failure) once one of the
        locker's background threads failed and was restarted, and
        ConnectionFailed for a minute after a heartbeat slower than a third
        of the shortest lease; None otherwise."""
        _check(_lib.turn_locker_health(self._handle))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def lock(self, resource, label="", expire=None, patience=None, timeout=None):
        """A context manager that takes the lock on entry and gives it back on
        exit, as turn 1.0's. `expire` (the lease) and `patience` are seconds
        (None: 10 s and 60 s); `timeout` seconds (None waits forever, 0 tries
        once and raises WouldBlock)."""
        return _Pending(self, (resource, label, expire, patience, timeout))

    def acquire(self, resource, label="", expire=None, patience=None, timeout=None):
        """Takes the lock now and returns the Lock (see lock())."""
        if timeout is None:
            wait = -1
        else:
            wait = max(0, int(round(float(timeout) * 1000)))
            if timeout > 0 and wait == 0:
                wait = 1
        handle = ctypes.c_void_p()
        _check(_lib.turn_lock_acquire(
            self._handle, _text(resource, "resource"), _text(label or "", "label"),
            _millis(expire, "expire"), _millis(patience, "patience"), wait,
            ctypes.byref(handle)))
        return Lock(handle.value)

    def status(self, resource):
        """The queue of `resource`, or None when there is none."""
        out = ctypes.c_void_p()
        code = _lib.turn_status_get(self._handle, _text(resource, "resource"), ctypes.byref(out))
        if code == 8:
            return None
        _check(code)
        s = out.value
        try:
            tickets = [(_lib.turn_status_serial_at(s, i),
                        _lib.turn_status_label_at(s, i).decode("utf-8", "replace"))
                       for i in range(_lib.turn_status_len(s))]
            return Status(resource, _lib.turn_status_indicator(s), _lib.turn_status_dispenser(s), tickets)
        finally:
            _lib.turn_status_free(s)

    def bump(self, resource):
        """Moves the indicator past dead tickets; returns it."""
        ind = ctypes.c_uint64()
        _check(_lib.turn_bump(self._handle, _text(resource, "resource"), ctypes.byref(ind)))
        return ind.value

    def reset(self, resource):
        """Removes the queue when idle; raises Busy while in use."""
        _check(_lib.turn_reset(self._handle, _text(resource, "resource")))
