"""turn: a FIFO, take-a-number lock for shared resources, kept in Redis.

The API of the Python package turn 1.0, over libturn (ctypes)::

    import turn

    locker = turn.Locker(host='localhost', port=6379, db=0)
    with locker.lock(resource='printer', label='report job') as lock:
        write(lock.token)  # a fencing token

    @locker.lock('printer')          # as a decorator, as turn 1.0's
    def report(): ...

On asyncio, ``async with locker.alock(resource)`` waits without a thread
(the library's pending acquire, its fd watched with ``loop.add_reader``;
cancelling the task withdraws the ticket), and ``await lock.lost()``
completes once the lock is known lost (the lost fd, watched the same way)::

    async with locker.alock('printer', label='report job', timeout=30) as lock:
        work = asyncio.ensure_future(write(lock.token))
        await asyncio.wait([work, lock.lost()], return_when=asyncio.FIRST_COMPLETED)

The shared modes take a `mode`: ``turn.Semaphore(permits, weight=1)``,
``turn.SHARED`` or ``turn.EXCLUSIVE`` (a read-write lock); ``lock_all``
takes plain locks on several resources, all or none::

    with locker.lock('encoder', mode=turn.Semaphore(4)):        # 1 of 4 permits
        encode()
    async with locker.alock('catalog', mode=turn.SHARED):       # beside other readers
        await read()
    with locker.lock_all(['ledger', 'audit']) as (ledger, audit):
        close_books(ledger.token, audit.token)

`pip install` builds libturn into this package; the library is found
through TURN_LIBRARY, else in this package, else next to it, else on the
system's library path.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import collections.abc
import ctypes
import functools
import logging
import select
import threading
from types import TracebackType
from typing import (TYPE_CHECKING, Any, Generic, Literal, cast, Awaitable, Callable, Coroutine, Dict, Generator, Iterable, List,
                    Optional, Sequence, Tuple, Type, TypeVar, Union)
from urllib.parse import quote, urlsplit

from . import _ffi
from ._version import __version__

__all__ = [
    "__version__",
    "Locker", "Lock", "Status", "Ticket", "TurnError", "NullArgument", "InvalidArgument",
    "ConnectionFailed", "AuthenticationFailed", "Timeout", "WouldBlock", "Lost", "Busy",
    "NotFound", "Forked", "ProtocolError", "Canceled", "WrongKind", "Panic", "UnsupportedOption",
    "Semaphore", "ReadWrite", "SHARED", "EXCLUSIVE", "MAX_ALL_RESOURCES", "version",
]

_lib: Any = _ffi.load()

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


class TurnError(Exception):
    """A failed call; `code` is the turn_result, `name` its name."""

    code: Optional[int] = None

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.name = _lib.turn_result_str(code).decode()
        #: The library's detail message.
        self.detail = message
        super().__init__("%s: %s" % (self.name, message))


_CONNECTION_BASES: Tuple[type, ...]
try:  # turn 1.0 programs catch redis-py's ConnectionError
    from redis.exceptions import ConnectionError as _RedisConnectionError
    _CONNECTION_BASES = (_RedisConnectionError, ConnectionError)
except ImportError:
    _CONNECTION_BASES = (ConnectionError,)


class NullArgument(TurnError): pass
class InvalidArgument(TurnError, ValueError): pass
if TYPE_CHECKING:
    _ConnectionBase = ConnectionError
else:
    _ConnectionBase = type("_ConnectionBase", _CONNECTION_BASES, {})


class ConnectionFailed(TurnError, _ConnectionBase):
    """Redis could not be reached or answered too late: caught by
    ``except ConnectionError`` and, when redis-py is installed, by
    ``except redis.exceptions.ConnectionError``."""
class AuthenticationFailed(ConnectionFailed):
    """Redis refused the password (a wrong one, an unknown or disabled
    user, a password for a server that has none) or wants one and none was
    given: TURN_ERR_CONNECTION whose message says "authentication failed"
    (and names the address, never the password)."""
class Timeout(TurnError, TimeoutError): pass
class WouldBlock(TurnError): pass
class Lost(TurnError): pass
class Busy(TurnError): pass
class NotFound(TurnError, LookupError): pass
class Forked(TurnError): pass
class ProtocolError(TurnError): pass
class Canceled(TurnError): pass
class WrongKind(TurnError):
    """The resource's queue is of another kind (a plain lock, a semaphore, a
    read-write lock) than the acquire asked for, or a semaphore of other
    permits: the kind is fixed when the queue is made, until it is reset."""
class Panic(TurnError): pass


class UnsupportedOption(TypeError):
    """A keyword of redis-py's client that has no meaning here (the library
    makes its own connections); the message names each one."""


_ERRORS = {1: NullArgument, 2: InvalidArgument, 3: ConnectionFailed, 4: Timeout,
           5: WouldBlock, 6: Lost, 7: Busy, 8: NotFound, 9: Forked,
           10: ProtocolError, 11: Canceled, 12: WrongKind, 99: Panic}


def _error(code: int, detail: str) -> TurnError:
    """The exception of a failed call: its code's class, AuthenticationFailed
    for a connection failure that says "authentication failed"."""
    if code == 3 and "authentication failed" in detail:
        return AuthenticationFailed(code, detail)
    return _ERRORS.get(code, TurnError)(code, detail)


def _check(code: int) -> None:
    # turn_last_error is per thread, and this runs on the calling thread.
    if code != 0:
        detail = (_lib.turn_last_error() or b"").decode("utf-8", "replace")
        raise _error(code, detail)


def _text(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError("%s must be str, not %s" % (what, type(value).__name__))
    return value.encode("utf-8")


def _name(value: object) -> bytes:
    """A resource name or label as turn 1.0 writes it: str() of anything
    (42 is "42"; bytes b"x" is "b'x'", as turn 1.0's format() makes it)."""
    return (value if isinstance(value, str) else str(value)).encode("utf-8")


def _millis(seconds: Optional[float], what: str) -> int:
    if seconds is None:
        return 0
    ms = int(round(float(seconds) * 1000))
    if ms < 0 or ms > 0xFFFFFFFF:
        raise ValueError("%s out of range: %r" % (what, seconds))
    return ms


def version() -> str:
    """The version of the loaded libturn."""
    return cast(bytes, _lib.turn_version()).decode()


class Semaphore(collections.namedtuple("Semaphore", ["permits", "weight"])):
    """The mode of a FIFO semaphore's ticket, ``mode=turn.Semaphore(permits,
    weight=1)``: it takes `weight` of the `permits` (1 <= weight <=
    permits). Holders are admitted while their weights add up to at most
    `permits`, strictly in draw order: a ticket that does not fit yet holds
    back every later one. Every acquire of one resource names the same
    permits (else WrongKind). A holder that dies gives its permits back
    within its lease and a second."""

    __slots__ = ()

    def __new__(cls, permits: int, weight: int = 1) -> "Semaphore":
        return super().__new__(cls, int(permits), int(weight))


class ReadWrite(collections.namedtuple("ReadWrite", ["exclusive"])):
    """The mode of a read-write lock's ticket: ``turn.SHARED`` (a reader,
    beside other readers) or ``turn.EXCLUSIVE`` (a writer, alone). Draw
    order decides: a reader drawn after a waiting writer waits for it."""

    __slots__ = ()


#: A read-write lock's reader: holds beside other readers.
SHARED = ReadWrite(False)
#: A read-write lock's writer: holds alone.
EXCLUSIVE = ReadWrite(True)

#: A lock's mode: None (the plain lock), a Semaphore or a ReadWrite.
Mode = Optional[Union[Semaphore, ReadWrite]]

#: The most resources one lock_all takes.
MAX_ALL_RESOURCES = 64


def _uint32(value: int, what: str) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError("%s out of range: %r" % (what, value))
    return value


def _mode_calls(mode: Mode) -> Tuple[Any, Any, Tuple[int, ...]]:
    """The blocking acquire of `mode` (None: the plain lock), its pending
    form, and the mode's arguments, which go after the label."""
    if mode is None:
        return _lib.turn_lock_acquire, _lib.turn_acquire_start, ()
    if isinstance(mode, Semaphore):
        return (_lib.turn_semaphore_acquire, _lib.turn_semaphore_start,
                (_uint32(mode.permits, "permits"), _uint32(mode.weight, "weight")))
    if isinstance(mode, ReadWrite):
        return _lib.turn_rwlock_acquire, _lib.turn_rwlock_start, (1 if mode.exclusive else 0,)
    raise TypeError("mode must be None, turn.Semaphore(permits, weight), turn.SHARED or "
                    "turn.EXCLUSIVE, not %r" % (mode,))


def _with_mode(args: Tuple[Any, ...], extra: Iterable[int]) -> Tuple[Any, ...]:
    """`_acquire_args`'s arguments with a mode's between the label and the
    lease."""
    return args[:2] + tuple(extra) + args[2:]


class Ticket(Tuple[int, str]):
    """One live ticket of a Status: a (serial, label) pair, as turn 1.0's,
    with its facts as attributes, read when the status was:

    - ``held``: it holds (else it waits);
    - ``ours``: drawn by this library (False: a turn 1.0 client's ticket);
    - ``token``: its fencing token (None when not known: a turn 1.0 ticket);
    - ``held_for`` (a holder) and ``waited_for`` (a waiter): seconds, None
      when not known or for the other state;
    - ``lease_left``: seconds left of its lease (None: no expiry);
    - ``position``: a waiter's place among the waiters, from 1 (None for a
      holder);
    - ``weight``: the permits it takes of a semaphore (1 in other queues);
      ``exclusive``: it holds alone (a plain queue's ticket, a writer)."""

    serial: int
    label: str
    held: bool
    ours: bool
    token: Optional[int]
    held_for: Optional[float]
    waited_for: Optional[float]
    lease_left: Optional[float]
    position: Optional[int]
    weight: int
    exclusive: bool

    def __new__(cls, serial: int, label: str, held: bool = False, ours: bool = True,
                token: Optional[int] = None, held_for: Optional[float] = None,
                waited_for: Optional[float] = None, lease_left: Optional[float] = None,
                position: Optional[int] = None, weight: int = 1,
                exclusive: bool = True) -> "Ticket":
        self = super().__new__(cls, (serial, label))
        self.serial, self.label = serial, label
        self.held, self.ours, self.token = held, ours, token
        self.held_for, self.waited_for, self.lease_left = held_for, waited_for, lease_left
        self.position, self.weight, self.exclusive = position, weight, exclusive
        return self

    def __repr__(self) -> str:
        return ("Ticket(%r, %r, held=%r, ours=%r, token=%r, held_for=%r, waited_for=%r, "
                "lease_left=%r, position=%r, weight=%r, exclusive=%r)" % (
                    self.serial, self.label, self.held, self.ours, self.token, self.held_for,
                    self.waited_for, self.lease_left, self.position, self.weight,
                    self.exclusive))


_KINDS = {0: "plain", 1: "semaphore", 2: "rwlock"}


def _ticket(s: Any, i: int) -> Ticket:
    """Ticket `i` of the C status `s`."""
    held = _lib.turn_status_held_at(s, i) == 1
    age = _lib.turn_status_age_ms_at(s, i)
    lease = _lib.turn_status_lease_left_ms_at(s, i)
    return Ticket(
        _lib.turn_status_serial_at(s, i),
        _lib.turn_status_label_at(s, i).decode("utf-8", "replace"),
        held=held,
        ours=_lib.turn_status_ours_at(s, i) == 1,
        token=_lib.turn_status_token_at(s, i) or None,
        held_for=age / 1000.0 if held and age >= 0 else None,
        waited_for=age / 1000.0 if not held and age >= 0 else None,
        lease_left=lease / 1000.0 if lease >= 0 else None,
        position=_lib.turn_status_position_at(s, i) or None,
        weight=_lib.turn_status_weight_at(s, i),
        exclusive=_lib.turn_status_exclusive_at(s, i) == 1)


class Status:
    """A snapshot of one queue: indicator, dispenser, and tickets, a list of
    Tickets ((serial, label) pairs with their facts), ascending, holders
    first; `kind` ("plain", "semaphore" or "rwlock") and a semaphore's
    `permits` (None for another kind). `holders` and `waiters` are the
    tickets that hold and those that wait."""

    def __init__(self, resource: object, indicator: int, dispenser: int, tickets: List[Ticket],
                 kind: str = "plain", permits: Optional[int] = None) -> None:
        self.resource, self.indicator, self.dispenser = resource, indicator, dispenser
        self.tickets = tickets
        self.kind, self.permits = kind, permits

    @property
    def holders(self) -> List[Ticket]:
        return [t for t in self.tickets if getattr(t, "held", False)]

    @property
    def waiters(self) -> List[Ticket]:
        return [t for t in self.tickets if not getattr(t, "held", False)]

    def __repr__(self) -> str:
        permits = ", permits=%d" % self.permits if self.permits is not None else ""
        return "Status(%r, indicator=%d, dispenser=%d, kind=%r%s, tickets=%r)" % (
            self.resource, self.indicator, self.dispenser, self.kind, permits, self.tickets)


class Lock:
    """A held lock. Release it (or leave its `with` block) when done."""

    _handle: Optional[int]

    def __init__(self, handle: int, locker: Optional[Locker] = None,
                 resource: Optional[str] = None) -> None:
        self._handle = handle
        # The locker stays open while one of its locks is held.
        self._locker, self.resource = locker, resource
        self._guard = threading.Lock()
        #: The ticket number (turn 1.0's, shown by status): it starts over
        #: when the queue is made anew, so it is not a fencing token.
        self.serial = _lib.turn_lock_serial(handle)
        token = ctypes.c_uint64()
        _check(_lib.turn_lock_token(handle, ctypes.byref(token)))
        #: The fencing token: greater than every earlier lock's on this
        #: resource, also across a Redis restart (``serial`` is the ticket
        #: number, turn 1.0's; it starts over when the queue does).
        self.token = token.value
        # The lost() futures and their readers, by event loop.
        self._watches: Dict[asyncio.AbstractEventLoop, Tuple[int, asyncio.Future[None]]] = {}

    def lost_fd(self) -> int:
        """A file descriptor that becomes readable once the lock is known
        lost (presence key gone, indicator moved on: within one heartbeat;
        the lease lapsed by the local clock: at once). Owned by the library:
        watch it (select, selectors, an event loop), never read or close it.
        It stays readable once lost, never turns readable for a lock held
        normally, and is closed by release()."""
        with self._guard:
            if not self._handle:
                raise InvalidArgument(2, "released already")
            fd = _lib.turn_lock_lost_fd(self._handle)
        if fd < 0:
            detail = (_lib.turn_last_error() or b"").decode("utf-8", "replace")
            raise InvalidArgument(2, detail)
        return int(fd)

    def lost(self) -> "asyncio.Future[None]":
        """An asyncio future, of the running loop, that completes (with None)
        once the lock is known lost; the same future on each call. It stays
        pending after a normal release. Watch it beside your work::

            work = asyncio.ensure_future(write_ledger(lock.token))
            await asyncio.wait([work, lock.lost()], return_when=asyncio.FIRST_COMPLETED)

        Release the lock from the loop's thread (release() takes its reader
        off the loop before the fd is closed)."""
        loop = asyncio.get_running_loop()
        watch = self._watches.get(loop)
        if watch is not None and not watch[1].cancelled():
            return watch[1]
        fd = self.lost_fd()
        future = loop.create_future()

        def readable() -> None:
            loop.remove_reader(fd)
            if not future.done():
                future.set_result(None)

        def done(f: "asyncio.Future[None]") -> None:
            # Canceled by its waiter (asyncio.wait_for, say): stop watching.
            if f.cancelled() and self._watches.get(loop, (None, None))[1] is f:
                loop.remove_reader(fd)
                del self._watches[loop]

        loop.add_reader(fd, readable)
        future.add_done_callback(done)
        self._watches[loop] = (fd, future)
        return future

    def _unwatch(self) -> None:
        """Takes the lost fd off every loop watching it (before release)."""
        watches, self._watches = self._watches, {}
        for loop, (fd, _future) in watches.items():
            if not loop.is_closed():
                loop.remove_reader(fd)

    def check(self) -> None:
        """Raises Lost once the lock is lost (no round trip)."""
        with self._guard:
            if not self._handle:
                raise InvalidArgument(2, "released already")
            _check(_lib.turn_lock_check(self._handle))

    @property
    def held(self) -> bool:
        """True while held."""
        with self._guard:
            return bool(self._handle) and _lib.turn_lock_check(self._handle) == 0

    def release(self) -> None:
        """Gives the turn to the next ticket; raises Lost when the lock had
        been lost."""
        with self._guard:
            handle, self._handle = self._handle, None
        if not handle:
            raise InvalidArgument(2, "released already")
        self._unwatch()
        _check(_lib.turn_lock_release(handle))

    def __repr__(self) -> str:
        state = "held" if self._handle else "released"
        return "<turn.Lock %r serial=%d token=%d %s>" % (
            self.resource, self.serial, self.token, state)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        if self._handle:
            self.release()
        return False

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._unwatch()
            _lib.turn_lock_release(handle)


def _leave(locker: Locker, lock: Any,
           exc_type: Optional[Type[BaseException]]) -> None:
    """Releases the lock (or the locks of lock_all) of a `with` block that
    ends, as turn 1.0 does."""
    if isinstance(lock, list):
        for one in lock:
            _leave(locker, one, exc_type)
        return
    if lock is None or not lock._handle:
        return
    if exc_type is None or not issubclass(exc_type, Exception):
        lock.release()
        return
    # As turn 1.0: "N crashed!" on the external channel. Then, unlike
    # turn 1.0 (whose waiters sat out their patience), the turn goes to
    # the next ticket at once. The block's exception is the one raised: a
    # failure to tell Redis is left to the lease.
    try:
        locker._call(_lib.turn_announce, _name(lock.resource), b"%d crashed!" % lock.serial)
    except TurnError:
        pass
    try:
        lock.release()
    except TurnError:
        pass


class _Pending(Generic[_T]):
    """What Locker.lock (and lock_all) returns: acquires on entering the
    `with` block and releases on leaving it; used as a decorator, it does
    so around each call of the function (as turn 1.0's). `acquire` takes
    no argument and returns the Lock (or the list of them)."""

    def __init__(self, locker: Locker, acquire: Callable[[], _T]) -> None:
        self._locker, self._acquire = locker, acquire
        self._lock: Optional[_T] = None

    def __enter__(self) -> _T:
        self._lock = self._acquire()
        return self._lock

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        lock, self._lock = self._lock, None
        _leave(self._locker, lock, exc_type)
        return False

    def __call__(self, func: _F) -> _F:
        import functools

        @functools.wraps(func)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with _Pending(self._locker, self._acquire):
                return func(*args, **kwargs)
        return cast(_F, locked)


class _AsyncLocked(Generic[_T]):
    """What Locker.alock (and alock_all) returns: an async context manager
    that takes the lock on entry (awaiting its turn without a thread) and
    gives it back on exit. `acquire` takes no argument and returns the
    awaitable of the Lock (or of the list of them). `ahead`: the progress
    of the wait on entry (see _Acquiring; None for alock_all's)."""

    def __init__(self, locker: Locker, acquire: Callable[[], Awaitable[_T]]) -> None:
        self._locker, self._acquire = locker, acquire
        self._lock: Optional[_T] = None
        self._waiting: Optional[Awaitable[_T]] = None

    @property
    def ahead(self) -> Optional[int]:
        return getattr(self._waiting, "ahead", None)

    async def __aenter__(self) -> _T:
        self._waiting = self._acquire()
        self._lock = await self._waiting
        return self._lock

    async def __aexit__(self, exc_type: Optional[Type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> Literal[False]:
        lock, self._lock = self._lock, None
        _leave(self._locker, lock, exc_type)
        return False


class _Acquiring(Coroutine[Any, Any, Lock]):
    """What Locker.aacquire returns: the coroutine of the Lock (await it,
    or make it a task), whose ``ahead`` is its wait's progress for
    displays: None before its ticket is drawn, then the number of live
    tickets ahead of it (the holder included) as its waiter last read the
    queue (when drawn, and each time it looked since), 0 once the outcome
    is known. Read it on the loop's thread::

        acquiring = locker.aacquire("printer")
        task = asyncio.ensure_future(acquiring)
        ...
        print(acquiring.ahead, "ahead")
        lock = await task
    """

    def __init__(self) -> None:
        self._pending: Optional[int] = None
        self._ended = False
        self._coro: Any = None

    def _start(self, coro: Coroutine[Any, Any, Lock]) -> None:
        self._coro = coro

    @property
    def ahead(self) -> Optional[int]:
        if self._pending is not None:
            return _ahead(self._pending)
        return 0 if self._ended else None

    def __await__(self) -> Generator[Any, None, Lock]:
        return self

    def __iter__(self) -> _Acquiring:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        try:
            return self._coro.send(value)
        except BaseException:
            self._ended = True
            raise

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        try:
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)
        except BaseException:
            self._ended = True
            raise

    def close(self) -> None:
        self._ended = True
        self._coro.close()


def _wake(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


# redis-py client keywords (turn 1.0 passes its keywords to redis.Redis):
# these are mapped onto the URL and options; the ones after them have no
# meaning here and raise UnsupportedOption.
_REDIS_KEYWORDS = {
    "username", "socket_timeout", "socket_connect_timeout", "unix_socket_path",
    "ssl", "ssl_keyfile", "ssl_certfile", "ssl_ca_certs", "ssl_cert_reqs",
    "ssl_check_hostname", "max_connections", "decode_responses", "encoding",
    "encoding_errors",
}
_REDIS_UNSUPPORTED = {
    "socket_keepalive", "socket_keepalive_options", "connection_pool", "retry_on_timeout",
    "retry_on_error", "retry", "ssl_password", "ssl_ca_path", "ssl_ca_data",
    "ssl_include_verify_flags", "ssl_exclude_verify_flags", "ssl_validate_ocsp",
    "ssl_validate_ocsp_stapled", "ssl_ocsp_context", "ssl_ocsp_expected_cert",
    "ssl_min_version", "ssl_ciphers", "single_connection_client", "health_check_interval",
    "client_name", "lib_name", "lib_version", "driver_info", "redis_connect_func",
    "credential_provider", "protocol", "cache", "cache_config", "event_dispatcher",
    "maint_notifications_config", "charset", "errors", "connection_class",
}


def _seconds_ms(value: float, what: str) -> int:
    ms = int(round(float(value) * 1000))
    if ms <= 0 or ms > 0xFFFFFFFF:
        raise ValueError("%s out of range: %r" % (what, value))
    return ms


def _replicas(count: Optional[int], timeout: Optional[float]) -> Optional[Tuple[int, int]]:
    """(replicas, timeout in ms) for turn_options_set_min_replicas, or None
    for the deployment's default."""
    if count is None:
        if timeout is not None:
            raise InvalidArgument(2, "replica_timeout needs min_replicas")
        return None
    count = int(count)
    if count < 0 or count > 0xFFFFFFFF:
        raise ValueError("min_replicas out of range: %r" % count)
    return count, _millis(1 if timeout is None else timeout, "replica_timeout")


def _cert_reqs_none(value: object) -> bool:
    import ssl as _ssl
    if value is None:
        return False
    if isinstance(value, str):
        return value.lower() == "none"
    return value == _ssl.CERT_NONE


class Locker:
    """A client of one Redis with the library's three background threads;
    share it between threads. It connects on first use (as turn 1.0's), so
    a connection failure is raised by the first lock, status, bump or
    reset, as ConnectionFailed.

    Arguments as turn 1.0's, which are redis-py's: host, port, db, username,
    password, unix_socket_path, socket_timeout (replies),
    socket_connect_timeout, ssl with ssl_ca_certs, ssl_certfile,
    ssl_keyfile, ssl_cert_reqs and ssl_check_hostname, max_connections (the
    pool), decode_responses and encoding (labels are always UTF-8 text);
    redis-py's others raise UnsupportedOption. Or a `url` (redis://,
    rediss://, unix://, redis+sentinel://, redis+cluster://). Also:
    `prefix` for the key prefix; `tls_ca`, `tls_cert`, `tls_key` (PEM
    files) for rediss:// URLs; `clock_serials`; `min_replicas` and
    `replica_timeout` (seconds, default 1) for replica confirmation: a
    grant, renewal or release counts once that many replicas have it (None:
    the deployment's default, 1 within 1 s on a redis+sentinel:// URL, 0
    otherwise; 0: do not wait)."""

    def __init__(self, host: str = "localhost", port: int = 6379, db: int = 0,
                 password: Optional[str] = None, url: Optional[str] = None,
                 prefix: str = "turn", clock_serials: bool = False, tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                 min_replicas: Optional[int] = None, replica_timeout: Optional[float] = None,
                 **redis_kwargs: Any) -> None:
        # What turn 1.0 passed to redis.Redis, for `client`.
        self._client_kwargs = {"host": host, "port": port, "db": db, **redis_kwargs}
        if password is not None:
            self._client_kwargs["password"] = password
        self._client_url = url
        unknown = sorted(k for k in redis_kwargs
                         if k not in _REDIS_KEYWORDS and k not in _REDIS_UNSUPPORTED)
        if unknown:
            raise TypeError("Locker() got an unexpected keyword argument %r" % unknown[0])
        unsupported = sorted(k for k in redis_kwargs if k in _REDIS_UNSUPPORTED)
        kw = dict(redis_kwargs)
        encoding = kw.pop("encoding", "utf-8")
        if str(encoding).lower().replace("_", "-") not in ("utf-8", "utf8"):
            unsupported.append("encoding=%r (labels are UTF-8)" % (encoding,))
        if kw.pop("encoding_errors", "strict") != "strict":
            unsupported.append("encoding_errors (labels are valid UTF-8)")
        kw.pop("decode_responses", None)
        ssl = bool(kw.pop("ssl", False))
        ca = kw.pop("ssl_ca_certs", None) or tls_ca
        cert = kw.pop("ssl_certfile", None) or tls_cert
        key = kw.pop("ssl_keyfile", None) or tls_key
        insecure = _cert_reqs_none(kw.pop("ssl_cert_reqs", None))
        if kw.pop("ssl_check_hostname", True) is False and not insecure:
            unsupported.append("ssl_check_hostname=False (without ssl_cert_reqs='none')")
        if unsupported:
            raise UnsupportedOption(
                "turn.Locker: these redis-py options have no meaning here (turn makes "
                "its own connections): " + ", ".join(unsupported))

        if url is None:
            user = kw.pop("username", None)
            auth = ""
            if password is not None or user is not None:
                auth = "%s:%s@" % (quote(str(user or ""), safe=""),
                                   quote(str(password or ""), safe=""))
            socket = kw.pop("unix_socket_path", None)
            if socket is not None:
                if ssl:
                    raise UnsupportedOption("turn.Locker: ssl over unix_socket_path")
                query = "db=%d" % int(db)
                if password is not None:
                    query += "&pass=" + quote(str(password), safe="")
                if user is not None:
                    query += "&user=" + quote(str(user), safe="")
                url = "unix://%s?%s" % (quote(str(socket), safe="/"), query)
            else:
                host = str(host)
                if ":" in host and not host.startswith("["):
                    host = "[%s]" % host
                url = "%s://%s%s:%d/%d" % ("rediss" if ssl else "redis", auth, host,
                                           int(port), int(db))
                if insecure:
                    url += "#insecure"
        elif ssl or insecure or "username" in kw or "unix_socket_path" in kw:
            raise UnsupportedOption("turn.Locker: ssl, ssl_cert_reqs, username and "
                                    "unix_socket_path go in the url when one is given")
        scheme = urlsplit(url).scheme
        if scheme not in ("redis", "rediss", "unix", "redis+unix", "redis+sentinel",
                          "rediss+sentinel", "redis+cluster", "rediss+cluster"):
            raise InvalidArgument(2, "unsupported redis URL scheme %r" % scheme)
        connect_timeout = kw.pop("socket_connect_timeout", None)
        command_timeout = kw.pop("socket_timeout", None)
        if connect_timeout is None:  # redis-py connects within socket_timeout too
            connect_timeout = command_timeout
        pool = kw.pop("max_connections", None)
        replicas = _replicas(min_replicas, replica_timeout)

        # Checked now, used at the first call.
        self._url = url
        self._handle: Optional[int] = None
        self._connecting = threading.Lock()
        opts = ctypes.c_void_p()
        self._options: Optional[ctypes.c_void_p] = opts
        _check(_lib.turn_options_new(ctypes.byref(opts)))
        try:
            _check(_lib.turn_options_set_prefix(opts, _text(prefix, "prefix")))
            _check(_lib.turn_options_set_clock_serials(opts, 1 if clock_serials else 0))
            if connect_timeout is not None:
                _check(_lib.turn_options_set_connect_timeout_ms(
                    opts, _seconds_ms(connect_timeout, "socket_connect_timeout")))
            if command_timeout is not None:
                _check(_lib.turn_options_set_command_timeout_ms(
                    opts, _seconds_ms(command_timeout, "socket_timeout")))
            if pool is not None:
                _check(_lib.turn_options_set_pool_size(opts, int(pool)))
            if ca or cert or key:
                _check(_lib.turn_options_set_tls(
                    opts, *[None if f is None else _text(str(f), "TLS file")
                            for f in (ca, cert, key)]))
            if replicas is not None:  # last: checked against socket_timeout
                _check(_lib.turn_options_set_min_replicas(opts, *replicas))
        except BaseException:
            self._free_options()
            raise

    #: turn 1.0's cache of redis-py clients (``client``), by the MD5 of
    #: their keywords, shared by every Locker.
    cache: Dict[str, Any] = {}

    @property
    def client(self) -> Any:
        """turn 1.0's ``Locker.client``: a redis-py ``redis.Redis`` of the
        same server (``decode_responses=True``), shared through
        ``Locker.cache`` by lockers of the same keywords. The locks do not
        use it (the library makes its own connections); it is for a turn 1.0
        program's own commands. Needs redis-py (``pip install turn[redis]``);
        a redis+sentinel:// or redis+cluster:// url raises
        UnsupportedOption."""
        import hashlib

        import redis

        if self._client_url is not None:
            if urlsplit(self._client_url).scheme not in ("redis", "rediss", "unix"):
                raise UnsupportedOption("turn.Locker.client: redis-py's Redis takes a "
                                        "redis://, rediss:// or unix:// url")
            kwargs: Dict[str, Any] = {"url": self._client_url}
        else:
            kwargs = dict(self._client_kwargs)
        kwargs.pop("decode_responses", None)
        key = hashlib.md5(str(sorted(kwargs.items())).encode("utf-8")).hexdigest()
        if key not in self.cache:
            if "url" in kwargs:
                self.cache[key] = redis.Redis.from_url(kwargs["url"], decode_responses=True)
            else:
                self.cache[key] = redis.Redis(decode_responses=True, **kwargs)
        return self.cache[key]

    def __repr__(self) -> str:
        # The url without its password.
        parts = urlsplit(self._url)
        netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
        state = "connected" if self._handle else (
            "closed" if self._options is None else "not connected")
        return "<turn.Locker %s://%s%s %s>" % (parts.scheme, netloc, parts.path, state)

    def _free_options(self) -> None:
        opts, self._options = getattr(self, "_options", None), None
        if opts:
            _lib.turn_options_free(opts)

    def _get(self) -> int:
        """The C locker, made (connected) at the first call."""
        handle = self._handle
        if handle:
            return handle
        with self._connecting:
            if self._handle:
                return self._handle
            if self._options is None:
                raise InvalidArgument(2, "the locker is closed")
            made = ctypes.c_void_p()
            _check(_lib.turn_locker_new_with_options(
                _text(self._url, "url"), self._options, ctypes.byref(made)))
            self._handle = cast(int, made.value)
            self._free_options()
            return self._handle

    def _call(self, fn: Any, *args: Any) -> None:
        _check(fn(self._get(), *args))

    def close(self) -> None:
        """Stops the threads, releases locks still held, closes connections."""
        guard = getattr(self, "_connecting", None)
        if guard is None:
            return
        with guard:
            handle, self._handle = self._handle, None
            self._free_options()
        if handle:
            _lib.turn_locker_free(handle)

    __del__ = close

    def health(self) -> None:
        """Raises Panic (with the count and the last failure) once one of the
        locker's background threads failed and was restarted, and
        ConnectionFailed for a minute after a heartbeat slower than a third
        of the shortest lease; None otherwise (and before the first
        connection)."""
        if self._handle:
            _check(_lib.turn_locker_health(self._handle))

    def __enter__(self) -> Locker:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False

    def lock(self, resource: object, label: object = "", expire: Optional[float] = 60,
             patience: Optional[float] = 60, timeout: Optional[float] = None, *,
             mode: Mode = None,
             on_position: Optional[Callable[[int], object]] = None) -> _Pending[Lock]:
        """A context manager that takes the lock on entry and gives it back on
        exit, as turn 1.0's, and also a decorator. `resource` and `label`
        are str()-ed as turn 1.0 does. `expire` (the lease) and `patience`
        are seconds (turn 1.0's defaults, 60 and 60; None for the same);
        `timeout` seconds (None waits forever, 0 tries once and raises
        WouldBlock). Should the block raise an exception, turn 1.0's
        "N crashed!" line is published and the turn goes to the next ticket
        at once.

        `mode` makes it a shared mode's ticket: ``turn.Semaphore(permits,
        weight=1)``, ``turn.SHARED`` or ``turn.EXCLUSIVE`` (a read-write
        lock); None is the plain lock. A queue's kind is fixed when it is
        made: an acquire of another kind (or other permits) raises
        WrongKind.

        `on_position`, a function of one argument, hears the wait's
        progress: it is called on the waiting thread with the number of
        live tickets ahead (the holder included) when the ticket is drawn
        and each time that number changes as the waiter reads the queue,
        for progress displays; an exception it raises withdraws the ticket
        and goes on::

            with locker.lock("printer", on_position=lambda ahead: print(ahead, "ahead")):
                ..."""
        return _Pending(self, functools.partial(
            self.acquire, resource, label, expire, patience, timeout, mode=mode,
            on_position=on_position))

    def acquire(self, resource: object, label: object = "", expire: Optional[float] = 60,
                patience: Optional[float] = 60, timeout: Optional[float] = None, *,
                mode: Mode = None, on_position: Optional[Callable[[int], object]] = None) -> Lock:
        """Takes the lock now and returns the Lock (see lock(), and its
        `on_position`). Ctrl-C (KeyboardInterrupt) ends the wait at once,
        withdrawing the ticket."""
        args = _acquire_args(resource, label, expire, patience, timeout)
        blocking, start, extra = _mode_calls(mode)
        resource = args[0]
        handle = self._get()
        main = threading.current_thread() is threading.main_thread()
        if on_position is not None and args[4] != 0:
            # The pending form, waited for in select(2) on this thread,
            # whose position is read between waits.
            out = ctypes.c_void_p()
            _check(start(handle, *_with_mode(args, extra), ctypes.byref(out)))
            handle = _finish(out.value, on_position)
        elif main and mode is None:
            handle = _interruptible_acquire(handle, args)
        elif main and args[4] != 0:
            # The shared modes have no cancelable blocking acquire: their
            # pending form, waited for in select(2) on this thread.
            out = ctypes.c_void_p()
            _check(start(handle, *_with_mode(args, extra), ctypes.byref(out)))
            handle = _finish(out.value)
        else:
            out = ctypes.c_void_p()
            _check(blocking(handle, *_with_mode(args, extra), ctypes.byref(out)))
            handle = cast(int, out.value)
        return Lock(handle, self, resource.decode("utf-8"))

    def lock_all(self, resources: Iterable[object], label: object = "",
                 expire: Optional[float] = 60, patience: Optional[float] = 60,
                 timeout: Optional[float] = None) -> _Pending[List[Lock]]:
        """lock() of plain locks on every one of `resources` (1 to 64
        distinct names), or none: the `with` block gets the list of Locks,
        in the order of `resources`, and they are all given back on exit.
        See acquire_all()."""
        return _Pending(self, functools.partial(
            self.acquire_all, resources, label, expire, patience, timeout))

    def acquire_all(self, resources: Iterable[object], label: object = "",
                    expire: Optional[float] = 60, patience: Optional[float] = 60,
                    timeout: Optional[float] = None) -> List[Lock]:
        """Takes plain locks on every one of `resources` (1 to 64 distinct
        names, str()-ed), or none; returns the Locks in the order of
        `resources`. They are taken one after another in the order every
        client of the library uses (the names' UTF-8 bytes, ascending), so
        that such calls, and such a call and single locks, never wait for
        each other in a circle. `timeout` bounds the whole call (0: all of
        them free now, else WouldBlock). On a timeout, an error or Ctrl-C,
        every lock taken is released and the waiting ticket withdrawn; the
        exception names the resource where it stopped. A name twice, none,
        or more than 64: InvalidArgument."""
        call = _AllCall(resources, label, expire, patience, timeout)
        call.locker = self._get()
        if threading.current_thread() is threading.main_thread():
            _interruptible(call, call.release)
        else:
            code = call(None)
            if code != 0:
                raise _error(code, call.detail)
        return call.locks(self)

    def alock(self, resource: object, label: object = "", expire: Optional[float] = 60,
              patience: Optional[float] = 60, timeout: Optional[float] = None, *,
              mode: Mode = None) -> _AsyncLocked[Lock]:
        """lock() for asyncio: an async context manager that takes the lock
        on entry and gives it back on exit (with turn 1.0's "N crashed!"
        should the block raise an exception)::

            async with locker.alock("printer", label="job 7", timeout=30) as lock:
                await print_report(lock.token)

        The wait holds no thread: see aacquire(). Arguments as lock()'s,
        `mode` too."""
        return _AsyncLocked(self, functools.partial(
            self.aacquire, resource, label, expire, patience, timeout, mode=mode))

    def alock_all(self, resources: Iterable[object], label: object = "",
                  expire: Optional[float] = 60, patience: Optional[float] = 60,
                  timeout: Optional[float] = None) -> _AsyncLocked[List[Lock]]:
        """lock_all() for asyncio: an async context manager whose block gets
        the list of Locks, all given back on exit. See aacquire_all()."""
        return _AsyncLocked(self, functools.partial(
            self.aacquire_all, resources, label, expire, patience, timeout))

    async def aacquire_all(self, resources: Iterable[object], label: object = "",
                           expire: Optional[float] = 60, patience: Optional[float] = 60,
                           timeout: Optional[float] = None) -> List[Lock]:
        """acquire_all() for asyncio: cancelling the task (or
        asyncio.wait_for's timeout) releases every lock taken and withdraws
        the waiting ticket. Unlike aacquire(), the wait holds a thread of
        its own (the library's all-or-none call has no pending form; the
        task's cancellation reaches it through a cancel token)."""
        loop = asyncio.get_running_loop()
        call = _AllCall(resources, label, expire, patience, timeout)
        call.locker = self._get()
        cancel = ctypes.c_void_p()
        _check(_lib.turn_cancel_new(ctypes.byref(cancel)))
        done = loop.create_future()
        gate = threading.Lock()
        state: Dict[str, Any] = {"code": None, "abandoned": False}

        def wait() -> None:
            code = call(cancel)
            with gate:
                state["code"] = code
                abandoned = state["abandoned"]
            if abandoned:  # the task was cancelled: nothing waits for these
                if code == 0:
                    call.release()
                _lib.turn_cancel_free(cancel)
                return
            try:
                loop.call_soon_threadsafe(_wake, done)
            except RuntimeError:  # the loop is closed
                pass

        threading.Thread(target=wait, name="turn-acquire-all", daemon=True).start()
        try:
            await done
        except BaseException:
            with gate:
                state["abandoned"] = True
                code = state["code"]
                if code is None:
                    _lib.turn_cancel_fire(cancel)  # the thread frees what it gets
            if code is not None:
                if code == 0:
                    call.release()
                _lib.turn_cancel_free(cancel)
            raise
        _lib.turn_cancel_free(cancel)
        if state["code"] != 0:
            raise _error(state["code"], call.detail)
        return call.locks(self)

    def aacquire(self, resource: object, label: object = "", expire: Optional[float] = 60,
                 patience: Optional[float] = 60, timeout: Optional[float] = None, *,
                 mode: Mode = None) -> _Acquiring:
        """acquire() for asyncio: a coroutine (awaitable) whose ``ahead``
        attribute is the wait's progress (see _Acquiring)."""
        waiting = _Acquiring()
        waiting._start(self._aacquire(waiting, resource, label, expire, patience, timeout,
                                      mode=mode))
        return waiting

    async def _aacquire(self, waiting: _Acquiring, resource: object, label: object = "",
                        expire: Optional[float] = 60, patience: Optional[float] = 60,
                        timeout: Optional[float] = None, *, mode: Mode = None) -> Lock:
        """acquire() for asyncio: takes a ticket (the library's
        turn_acquire_start, one round trip, made on the loop's thread) and
        awaits its turn with the pending acquire's fd watched by
        ``loop.add_reader``: no thread per waiting task, any number of tasks
        on one loop, served in ticket order. Cancelling the task (or
        asyncio.wait_for's timeout) withdraws the ticket, handing on a turn
        that came meanwhile; `timeout` seconds raises Timeout, and 0 tries
        once (WouldBlock). Returns the Lock; its lost() is a future of this
        loop. `mode` as lock()'s."""
        loop = asyncio.get_running_loop()
        args = _acquire_args(resource, label, expire, patience, timeout)
        blocking, start, extra = _mode_calls(mode)
        name = args[0].decode("utf-8")
        out = ctypes.c_void_p()
        if args[4] == 0:  # a try-lock: one round trip, no wait
            self._call(blocking, *_with_mode(args, extra), ctypes.byref(out))
            return Lock(cast(int, out.value), self, name)
        self._call(start, *_with_mode(args, extra), ctypes.byref(out))
        pending = waiting._pending = out.value
        try:
            fd = _lib.turn_pending_fd(pending)
            while True:
                ready = loop.create_future()
                loop.add_reader(fd, _wake, ready)
                try:
                    await ready
                finally:
                    # Before finish or cancel close the fd.
                    loop.remove_reader(fd)
                lock = ctypes.c_void_p()
                code = _lib.turn_pending_finish(pending, ctypes.byref(lock))
                if code == 5:  # TURN_ERR_WOULD_BLOCK: not yet
                    continue
                pending = None  # ended, whatever the outcome
                _check(code)
                return Lock(cast(int, lock.value), self, name)
        finally:
            waiting._pending = None
            if pending is not None:  # canceled (or failed) while waiting
                _lib.turn_pending_cancel(pending)

    def status(self, resource: object) -> Optional[Status]:
        """The queue of `resource`, or None when there is none."""
        out = ctypes.c_void_p()
        code = _lib.turn_status_get(self._get(), _name(resource), ctypes.byref(out))
        if code == 8:
            return None
        _check(code)
        s = out.value
        try:
            tickets = [_ticket(s, i) for i in range(_lib.turn_status_len(s))]
            kind = _KINDS.get(_lib.turn_status_kind(s), "plain")
            permits = _lib.turn_status_permits(s) if kind == "semaphore" else None
            return Status(resource, _lib.turn_status_indicator(s), _lib.turn_status_dispenser(s),
                          tickets, kind, permits)
        finally:
            _lib.turn_status_free(s)

    def metrics(self) -> str:
        """What this locker counted of its own work, in the Prometheus text
        format (0.0.4): acquires at once and after waiting, failures by
        reason, locks lost, hand-offs, heartbeat beats and slow beats,
        broken connections, and the histograms of waits and holds; every
        name starts with ``turn_``, no label names a resource. No round
        trip. ``turn.metrics.collector(locker)`` gives them to
        prometheus_client."""
        handle = self._get()
        needed = ctypes.c_size_t()
        _check(_lib.turn_locker_metrics(handle, None, 0, ctypes.byref(needed)))
        while True:
            # Room for counters that grow a digit between the two calls.
            size = needed.value + 64
            buf = ctypes.create_string_buffer(size)
            code = _lib.turn_locker_metrics(handle, buf, size, ctypes.byref(needed))
            if code == 0:
                return buf.value.decode("utf-8")
            if needed.value <= size:
                _check(code)

    def bump(self, resource: object) -> int:
        """Moves the indicator past dead tickets; returns it."""
        ind = ctypes.c_uint64()
        self._call(_lib.turn_bump, _name(resource), ctypes.byref(ind))
        return ind.value

    def reset(self, resource: object) -> None:
        """Removes the queue when idle; raises Busy while in use."""
        self._call(_lib.turn_reset, _name(resource))


def _acquire_args(resource: object, label: object, expire: Optional[float],
                  patience: Optional[float], timeout: Optional[float]
                  ) -> Tuple[bytes, bytes, int, int, int]:
    """The arguments of turn_lock_acquire after the locker: resource and
    label as bytes, expire and patience in ms, the wait in ms (-1:
    forever)."""
    if timeout is None:
        wait = -1
    else:
        wait = max(0, int(round(float(timeout) * 1000)))
        if timeout > 0 and wait == 0:
            wait = 1
    return (_name(resource), _name(label), _millis(60 if expire is None else expire, "expire"),
            _millis(60 if patience is None else patience, "patience"), wait)


class _AllCall:
    """One turn_lock_acquire_all_cancelable call: its arguments in C form
    (checked before the locker connects), and the handles it writes. Called with the cancel token (None: not
    cancelable), on any thread; returns the code, with the detail message
    of a failure (read on the calling thread) in `detail`."""

    def __init__(self, resources: Iterable[object], label: object, expire: Optional[float],
                 patience: Optional[float], timeout: Optional[float]) -> None:
        if isinstance(resources, (str, bytes)):
            raise TypeError("resources must be a list of names, not one %s"
                            % type(resources).__name__)
        names = [_name(r) for r in resources]
        self.names = [n.decode("utf-8") for n in names]
        #: The C locker, set before the call.
        self.locker: Optional[int] = None
        self._args = ((ctypes.c_char_p * max(1, len(names)))(*names), len(names)) + \
            _acquire_args("-", label, expire, patience, timeout)[1:]
        self._out = (ctypes.c_void_p * max(1, len(names)))()
        self.detail = ""

    def __call__(self, cancel: Any) -> int:
        code = _lib.turn_lock_acquire_all_cancelable(self.locker, *self._args, cancel, self._out)
        if code != 0:
            self.detail = (_lib.turn_last_error() or b"").decode("utf-8", "replace")
        return int(code)

    def release(self) -> None:
        """Releases the locks of a call that succeeded but whose caller is
        gone (Ctrl-C, a cancelled task)."""
        for handle in self._out[:len(self.names)]:
            _lib.turn_lock_release(handle)

    def locks(self, locker: Locker) -> List[Lock]:
        return [Lock(handle, locker, name) for handle, name in zip(self._out, self.names)]


# How often a wait with on_position looks at its position (a read of the
# pending acquire, no round trip).
_POSITION_POLL = 0.1


def _ahead(pending: int) -> int:
    """The live tickets ahead of a pending acquire, as last read."""
    ahead = ctypes.c_uint64()
    _check(_lib.turn_pending_position(pending, ctypes.byref(ahead)))
    return int(ahead.value)


def _finish(pending: Any,
            on_position: Optional[Callable[[int], object]] = None) -> int:
    """Waits on the calling thread for the outcome of a pending acquire, in
    select(2) on its fd, which Python's signal handlers interrupt: Ctrl-C
    (or any exception a handler raises, or on_position raises) withdraws
    the ticket, handing on a turn that came meanwhile, and goes on. Calls
    on_position(ahead) when the number of tickets ahead changes. Returns
    the lock's handle."""
    try:
        fd = _lib.turn_pending_fd(pending)
        told = None
        while True:
            if on_position is None:
                select.select([fd], [], [])
            else:
                ahead = _ahead(pending)
                if ahead and ahead != told:
                    told = ahead
                    on_position(ahead)
                if not select.select([fd], [], [], _POSITION_POLL)[0]:
                    continue
            out = ctypes.c_void_p()
            code = _lib.turn_pending_finish(pending, ctypes.byref(out))
            if code == 5:  # TURN_ERR_WOULD_BLOCK: not yet
                continue
            pending = None  # ended, whatever the outcome
            _check(code)
            return cast(int, out.value)
    finally:
        if pending is not None:
            _lib.turn_pending_cancel(pending)


# How often the main thread looks up from a wait to let Python's signal
# handlers run (a KeyboardInterrupt interrupts the wait anyway on POSIX).
_SLICE = 0.05


def _interruptible_acquire(locker: int, args: Tuple[Any, ...]) -> int:
    """Acquires the plain lock interruptibly (see _interruptible)."""
    out = ctypes.c_void_p()
    _interruptible(
        lambda cancel: _lib.turn_lock_acquire_cancelable(locker, *args, cancel, ctypes.byref(out)),
        lambda: _lib.turn_lock_release(out.value))
    return cast(int, out.value)


def _interruptible(call: Callable[[Any], int], release: Callable[[], object]) -> None:
    """Runs call(cancel), a cancelable acquire answering its code, in a
    helper thread while the calling (main) thread waits in short slices, so
    that Python's signal handlers run: on Ctrl-C (or any exception raised
    by a handler) the wait is cancelled, the ticket withdrawn, what was
    taken meanwhile released (release()), and the exception goes on.
    Raises the acquire's error."""
    cancel = ctypes.c_void_p()
    _check(_lib.turn_cancel_new(ctypes.byref(cancel)))
    done = threading.Event()
    result: Dict[str, Any] = {}

    def wait() -> None:
        code = call(cancel)
        # turn_last_error is per thread: read it on this one.
        result["code"] = code
        if code != 0:
            result["detail"] = (_lib.turn_last_error() or b"").decode("utf-8", "replace")
        done.set()

    helper = threading.Thread(target=wait, name="turn-acquire", daemon=True)
    try:
        helper.start()
        while not done.wait(_SLICE):
            pass
    except BaseException:
        _lib.turn_cancel_fire(cancel)
        helper.join()
        if result.get("code") == 0:
            release()
        raise
    finally:
        if not helper.is_alive():
            _lib.turn_cancel_free(cancel)
    code = result["code"]
    if code != 0:
        raise _error(code, result.get("detail", ""))


# The library's messages (a slow heartbeat, a background thread restarted)
# go to the logger "turn" of the logging module, at their level, instead of
# standard error (turn_set_log_callback, set at import). Configure it as
# any logger; with no handler anywhere, logging's last resort still prints
# warnings and errors on standard error. Messages never hold a password.
_LOG_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG}


def _log(context: Any, level: int, message: Optional[bytes]) -> None:
    """The log callback: called by the library from any thread, its own
    included; raises nothing."""
    try:
        text = (message or b"").decode("utf-8", "replace")
        logging.getLogger("turn").log(_LOG_LEVELS.get(level, logging.WARNING), "%s", text)
    except Exception:  # never into the library's thread
        pass


# Kept as long as the module: the library holds a pointer to it.
_log_callback = _ffi.LOG_FN(_log)


def _unroute_log() -> None:
    """At exit, before the interpreter goes away: the messages of lockers
    still open go back to standard error (the call waits for a callback
    in progress, without the GIL)."""
    _lib.turn_set_log_callback(_ffi.LOG_FN(), None)


_check(_lib.turn_set_log_callback(_log_callback, None))
atexit.register(_unroute_log)
