"""The shared modes: semaphores (mode=turn.Semaphore), read-write locks
(mode=turn.SHARED / turn.EXCLUSIVE) and lock_all, blocking and on asyncio."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import turn


def _wait_for_tickets(locker, resource, n):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = locker.status(resource)
        if status is not None and len(status.tickets) == n:
            return
        time.sleep(0.01)
    raise AssertionError("%s never had %d tickets" % (resource, n))


def _in_thread(f):
    """Runs f in a thread; returns a function that joins it and gives f's
    result (or raises its exception)."""
    result = {}

    def run():
        try:
            result["value"] = f()
        except BaseException as e:  # handed to the joining thread
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(30)
        assert not thread.is_alive(), "still waiting"
        if "error" in result:
            raise result["error"]
        return result["value"]
    return join


def test_a_semaphore_admits_holders_while_their_weights_fit(locker):
    two = turn.Semaphore(2)
    assert two == (2, 1)
    with locker.lock("sem", label="a", mode=two) as a:
        b = locker.acquire("sem", label="b", timeout=0, mode=two)
        assert a.held and b.held and b.token > a.token
        with pytest.raises(turn.WouldBlock):
            locker.acquire("sem", label="c", timeout=0, mode=two)
    # a's permit came back when its block ended.
    with locker.lock("sem", label="c", timeout=0, mode=two) as c:
        assert c.held
    b.release()

    with locker.lock("sem-3", mode=turn.Semaphore(3, weight=2)):
        with pytest.raises(turn.WouldBlock):
            locker.acquire("sem-3", timeout=0, mode=turn.Semaphore(3, weight=2))


def test_a_waiting_semaphore_ticket_holds_back_a_later_smaller_one(locker):
    big = turn.Semaphore(3, weight=2)
    holder = locker.acquire("sem", label="holder", mode=big)
    waiter = _in_thread(lambda: locker.acquire("sem", label="waiter", mode=big))
    _wait_for_tickets(locker, "sem", 2)
    # One permit is free, but the waiter drawn before comes first.
    with pytest.raises(turn.WouldBlock):
        locker.acquire("sem", label="small", timeout=0, mode=turn.Semaphore(3))
    holder.release()
    lock = waiter()
    assert lock.held
    lock.release()


def test_readers_share_and_a_writer_holds_alone_in_draw_order(locker):
    r1 = locker.acquire("rw", label="reader 1", mode=turn.SHARED)
    r2 = locker.acquire("rw", label="reader 2", timeout=0, mode=turn.SHARED)
    assert r1.held and r2.held
    with pytest.raises(turn.WouldBlock):
        locker.acquire("rw", label="writer", timeout=0, mode=turn.EXCLUSIVE)
    writer = _in_thread(lambda: locker.acquire("rw", label="writer", mode=turn.EXCLUSIVE))
    _wait_for_tickets(locker, "rw", 3)
    # A reader drawn after the waiting writer waits for it (here: on the
    # main thread, through the pending acquire; timeout ends it).
    with pytest.raises(turn.Timeout):
        locker.acquire("rw", label="late reader", timeout=0.2, mode=turn.SHARED)
    r1.release()
    r2.release()
    w = writer()
    assert w.held
    with pytest.raises(turn.WouldBlock):
        locker.acquire("rw", timeout=0, mode=turn.SHARED)
    w.release()
    with locker.lock("rw", timeout=0, mode=turn.SHARED) as r:
        assert r.held


def test_a_queue_keeps_its_kind_until_reset(locker):
    sem = locker.acquire("sem", mode=turn.Semaphore(2))
    rw = locker.acquire("rw", mode=turn.EXCLUSIVE)
    plain = locker.acquire("plain")
    for resource, mode in [("sem", None), ("sem", turn.Semaphore(3)), ("sem", turn.SHARED),
                           ("rw", None), ("rw", turn.Semaphore(2)),
                           ("plain", turn.EXCLUSIVE), ("plain", turn.Semaphore(2))]:
        with pytest.raises(turn.WrongKind) as e:
            locker.acquire(resource, timeout=0, mode=mode)
        assert e.value.code == 12 and e.value.name == "TURN_ERR_WRONG_KIND"
    # Waiting (the pending acquire of the main thread) answers the same.
    with pytest.raises(turn.WrongKind):
        locker.acquire("plain", timeout=5, mode=turn.SHARED)
    for lock in (sem, rw, plain):
        lock.release()
    with pytest.raises(turn.WrongKind):
        locker.acquire("sem", timeout=0)
    locker.reset("sem")
    with locker.lock("sem", timeout=0) as lock:
        assert lock.held


def test_bad_modes_are_refused(locker):
    for mode in [turn.Semaphore(0, 0), turn.Semaphore(0), turn.Semaphore(2, 0),
                 turn.Semaphore(2, 3)]:
        with pytest.raises(turn.InvalidArgument):
            locker.acquire("sem", mode=mode)
    with pytest.raises(ValueError):
        locker.acquire("sem", mode=turn.Semaphore(-1))
    with pytest.raises(TypeError):
        locker.acquire("sem", mode="shared")
    assert locker.status("sem") is None


def test_lock_all_gives_the_locks_in_the_callers_order_or_none(locker, url, request):
    # Queues whose next serials tell the locks apart: c 3, a 2, b 1.
    for resource in ("a", "c", "c"):
        locker.acquire(resource).release()
    with turn.Locker(url=url, prefix="py-" + request.node.name) as other:
        with locker.lock_all(["c", "a", "b"], label="all") as locks:
            assert [lock.serial for lock in locks] == [3, 2, 1]
            assert all(lock.held and lock.token for lock in locks)
            for resource in ("a", "b", "c"):
                with pytest.raises(turn.WouldBlock):
                    other.acquire(resource, timeout=0)
        assert [locker.status(r).tickets for r in ("a", "b", "c")] == [[], [], []]

        # c is busy: the call times out, and a is free again at once.
        busy = other.acquire("c", label="busy")
        with pytest.raises(turn.Timeout) as e:
            locker.acquire_all(["c", "a", "b"], timeout=0.3)
        assert 'stopped at "c"' in str(e.value) and "released" in str(e.value)
        with pytest.raises(turn.WouldBlock):
            locker.acquire_all(["a", "c"], timeout=0)
        other.acquire("a", timeout=0).release()
        busy.release()

    many = ["r%d" % i for i in range(turn.MAX_ALL_RESOURCES + 1)]
    for bad in ([], many, ["x", "y", "x"]):
        with pytest.raises(turn.InvalidArgument):
            locker.acquire_all(bad)
    with pytest.raises(TypeError):
        locker.acquire_all("ab")


def test_lock_all_releases_every_lock_when_its_block_raises(locker):
    with pytest.raises(KeyError):
        with locker.lock_all(["x", "y"]) as locks:
            assert len(locks) == 2
            raise KeyError("boom")
    assert locker.status("x").tickets == [] and locker.status("y").tickets == []


def test_async_modes_and_lock_all(locker):
    async def main():
        async with locker.alock("aio-sem", mode=turn.Semaphore(2)) as a:
            async with locker.alock("aio-sem", timeout=0, mode=turn.Semaphore(2)) as b:
                assert a.held and b.held
                with pytest.raises(turn.WouldBlock):
                    await locker.aacquire("aio-sem", timeout=0, mode=turn.Semaphore(2))
        reader = await locker.aacquire("aio-rw", mode=turn.SHARED)
        writer = asyncio.ensure_future(locker.aacquire("aio-rw", mode=turn.EXCLUSIVE))
        while len(locker.status("aio-rw").tickets) < 2:
            await asyncio.sleep(0.01)
        late = asyncio.ensure_future(locker.aacquire("aio-rw", mode=turn.SHARED))
        while len(locker.status("aio-rw").tickets) < 3:
            await asyncio.sleep(0.01)
        assert not writer.done() and not late.done()
        reader.release()
        w = await asyncio.wait_for(writer, 30)
        assert w.held and not late.done()
        w.release()
        r = await asyncio.wait_for(late, 30)
        r.release()

        async with locker.alock_all(["aio-b", "aio-a"]) as (b, a):
            assert a.resource == "aio-a" and b.resource == "aio-b"
        # Cancelled while waiting for its second lock: the first is released.
        busy = locker.acquire("aio-b", label="busy")
        task = asyncio.ensure_future(locker.aacquire_all(["aio-b", "aio-a"]))
        while len(locker.status("aio-b").tickets) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Released by the waiting thread as its call ends (cancelling never
        # waits on a round trip).
        for _ in range(3000):
            if locker.status("aio-a").tickets == [] and len(locker.status("aio-b").tickets) == 1:
                break
            await asyncio.sleep(0.01)
        assert locker.status("aio-a").tickets == []
        assert locker.status("aio-b").tickets == [(busy.serial, "busy")]
        with pytest.raises(turn.Timeout):
            await locker.aacquire_all(["aio-a", "aio-b"], timeout=0.2)
        assert locker.status("aio-a").tickets == []
        busy.release()

    asyncio.run(main())


CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import turn
locker = turn.Locker(url=sys.argv[2], prefix=sys.argv[3])
print("waiting", flush=True)
try:
    if sys.argv[4] == "all":
        locker.acquire_all(["ctrl-c-a", "ctrl-c-b"], label="child")
    else:
        locker.acquire("ctrl-c-b", label="child", mode=turn.SHARED)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    raise
print("acquired", flush=True)
"""


@pytest.mark.parametrize("wait", ["all", "shared"])
def test_ctrl_c_ends_a_wait_of_lock_all_or_a_shared_mode_leaving_nothing(url, locker, request, wait):
    package = os.path.join(os.path.dirname(__file__), "..")
    mode = turn.EXCLUSIVE if wait == "shared" else None
    holder = locker.acquire("ctrl-c-b", label="holder", mode=mode)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, package, url, "py-" + request.node.name, wait],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "waiting"
        _wait_for_tickets(locker, "ctrl-c-b", 2)
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGINT, (child.returncode, out, err)
    assert "interrupted" in out and "acquired" not in out
    # The child's ticket is withdrawn and its first lock released.
    _wait_for_tickets(locker, "ctrl-c-b", 1)
    assert locker.status("ctrl-c-b").tickets == [(holder.serial, "holder")]
    if wait == "all":
        assert locker.status("ctrl-c-a").tickets == []
    holder.release()
