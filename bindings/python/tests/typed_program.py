"""A program using the whole public API, for ``mypy --strict``
(test_typing.py): it is type-checked, not run."""

import asyncio
from typing import List, Optional

import turn
import turn.console
import turn.core
import turn.metrics
import turn.tools


def blocking(locker: turn.Locker) -> int:
    with locker.lock("printer", label="job", expire=30, patience=5.5, timeout=None,
                     on_position=lambda ahead: print(ahead)) as lock:
        lock.check()
        held: bool = lock.held
        fd: int = lock.lost_fd()
        print(held, fd, lock.serial, lock.resource, repr(lock))
    one: turn.Lock = locker.acquire("printer", mode=turn.Semaphore(4, weight=2))
    one.release()
    with locker.lock_all(["a", "b"], timeout=0) as locks:
        tokens: List[int] = [lock.token for lock in locks]
    every: List[turn.Lock] = locker.acquire_all(["c", "d"])
    for lock in every:
        lock.release()

    @locker.lock("printer")
    def report(pages: int) -> str:
        return "%d pages" % pages

    text: str = report(3)
    print(text, tokens)
    return one.token


async def waiting(locker: turn.Locker) -> None:
    async with locker.alock("catalog", mode=turn.SHARED) as lock:
        await asyncio.wait([asyncio.ensure_future(asyncio.sleep(0)), lock.lost()],
                           return_when=asyncio.FIRST_COMPLETED)
    acquiring = locker.aacquire("catalog", mode=turn.EXCLUSIVE, timeout=1.5)
    ahead: Optional[int] = acquiring.ahead
    lock = await acquiring
    print(ahead, lock.token)
    lock.release()
    async with locker.alock_all(["x", "y"]) as locks:
        print([one.serial for one in locks])
    for one in await locker.aacquire_all(["x", "y"]):
        one.release()


def watching(locker: turn.Locker) -> None:
    status: Optional[turn.Status] = locker.status("printer")
    if status is not None:
        print(status.resource, status.indicator, status.dispenser, status.kind, status.permits)
        for ticket in status.holders + status.waiters + status.tickets:
            serial, label = ticket
            print(serial, label, ticket.held, ticket.ours, ticket.token, ticket.held_for,
                  ticket.waited_for, ticket.lease_left, ticket.position, ticket.weight,
                  ticket.exclusive)
    text: str = locker.metrics()
    collector: turn.metrics.LockerCollector = turn.metrics.collector(locker)
    print(text, collector, locker.bump("printer"))
    locker.reset("printer")
    locker.health()


def errors(locker: turn.Locker) -> None:
    try:
        blocking(locker)
    except turn.Lost as e:
        code: Optional[int] = e.code
        print(code, e.name, e.detail)
    except (turn.Timeout, turn.WouldBlock, turn.Busy, turn.NotFound, turn.WrongKind,
            turn.AuthenticationFailed, turn.ConnectionFailed, turn.InvalidArgument,
            turn.NullArgument, turn.Forked, turn.ProtocolError, turn.Canceled, turn.Panic):
        pass
    except turn.UnsupportedOption:
        pass
    except turn.TurnError:
        pass


def main() -> None:
    version: str = turn.__version__ + turn.version()
    with turn.Locker(host="localhost", port=6379, db=0, password=None, prefix="turn",
                     min_replicas=0, socket_timeout=5) as locker:
        errors(locker)
        watching(locker)
        asyncio.run(waiting(locker))
        print(version, repr(locker), locker.client, turn.Locker.cache, turn.core.PREFIX,
              turn.MAX_ALL_RESOURCES, turn.ReadWrite(True).exclusive)
    other = turn.Locker(url="redis://localhost:6379/0", tls_ca=None, replica_timeout=None)
    other.close()
    turn.tools.status(["printer"], host="localhost")
    turn.console.main(["status"])
