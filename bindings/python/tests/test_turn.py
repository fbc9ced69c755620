"""The Python binding against a real redis-server: the seed's API, threads
and processes contending, timeouts, status, errors."""

import os
import subprocess
import sys
import threading
import time

import pytest

import turn


def test_the_seed_api(url):
    host, port_db = url[len("redis://"):].rsplit(":", 1)
    port, db = port_db.split("/")
    locker = turn.Locker(host=host, port=int(port), db=int(db))
    with locker.lock(resource="seed", label="This shows up in messages.") as lock:
        assert lock.serial >= 1
        assert lock.token > lock.serial  # the token counts from the server clock
        lock.check()
        status = locker.status("seed")
        assert status.indicator == lock.serial
        assert status.tickets == [(lock.serial, "This shows up in messages.")]
    assert locker.status("seed").tickets == []
    assert locker.health() is None
    locker.close()


def test_expire_patience_and_timeouts(locker):
    with locker.lock("r", label="holder", expire=2, patience=5):
        with pytest.raises(turn.WouldBlock):
            locker.acquire("r", timeout=0)
        with pytest.raises(turn.Timeout):
            locker.acquire("r", timeout=0.1)
    lock = locker.acquire("r", timeout=5)
    lock.release()
    with pytest.raises(turn.InvalidArgument):
        lock.release()


def test_bad_input(locker, url):
    with pytest.raises(turn.InvalidArgument):
        locker.acquire("")
    with pytest.raises(turn.InvalidArgument):
        locker.acquire("a\nb")
    with pytest.raises(turn.InvalidArgument):
        locker.acquire("r", expire=0.01)
    with pytest.raises(turn.InvalidArgument):
        turn.Locker(url="nonsense://")
    with pytest.raises(TypeError):
        turn.Locker(prefix=42)
    with pytest.raises(turn.Busy):
        with locker.lock("busy"):
            locker.reset("busy")
    assert locker.status("none") is None


def test_min_replicas(url, request):
    # One server has no replica: 0 turns replica confirmation off.
    with turn.Locker(url=url, prefix="py-" + request.node.name, min_replicas=0) as locker:
        with locker.lock("r", label="no replicas"):
            assert locker.status("r").tickets[0][1] == "no replicas"
    # Checked at once, used at the first call.
    turn.Locker(url=url, min_replicas=2, replica_timeout=0.5, socket_timeout=3).close()
    turn.Locker(url=url, min_replicas=1).close()  # within 1 s
    for bad in [dict(min_replicas=1, replica_timeout=0),
                dict(min_replicas=1, replica_timeout=5),  # not below socket_timeout (5 s)
                dict(min_replicas=1, replica_timeout=2, socket_timeout=2),
                dict(replica_timeout=0.5)]:
        with pytest.raises(turn.InvalidArgument):
            turn.Locker(url=url, **bad)
    for bad in [dict(min_replicas=-1), dict(min_replicas=1, replica_timeout=-1)]:
        with pytest.raises(ValueError):
            turn.Locker(url=url, **bad)


def test_threads_exclude_each_other_in_order(locker):
    inside, overlaps, grants = [0], [0], []
    guard = threading.Lock()

    def work():
        for _ in range(10):
            with locker.lock("threads") as lock:
                with guard:
                    inside[0] += 1
                    if inside[0] != 1:
                        overlaps[0] += 1
                    grants.append(lock.serial)
                time.sleep(0.001)
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 0
    assert len(grants) == 80 and grants == sorted(grants)


def test_a_blocking_acquire_releases_the_gil(locker):
    holder = locker.acquire("gil")
    counted = [0]
    waiter = threading.Thread(target=lambda: locker.acquire("gil").release())
    waiter.start()
    deadline = time.time() + 0.3
    while time.time() < deadline:
        counted[0] += 1
    holder.release()
    waiter.join(10)
    assert not waiter.is_alive()
    assert counted[0] > 1000


WORKER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import turn
locker = turn.Locker(url=sys.argv[2], prefix=sys.argv[3])
with open(sys.argv[4], "a", buffering=1) as log:
    for _ in range(10):
        with locker.lock("procs") as lock:
            log.write("enter %d\n" % lock.serial)
            time.sleep(0.002)
            log.write("leave %d\n" % lock.serial)
"""


def test_processes_exclude_each_other(url, tmp_path, request):
    log = tmp_path / "log"
    log.write_text("")
    package = os.path.join(os.path.dirname(__file__), "..")
    prefix = "py-" + request.node.name
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, package, url, prefix, str(log)])
             for _ in range(4)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    lines = log.read_text().split()
    pairs = list(zip(lines[0::2], lines[1::2]))
    assert len(pairs) == 80
    last = 0
    for i in range(0, len(pairs), 2):
        (e, s1), (l, s2) = pairs[i], pairs[i + 1]
        assert (e, l) == ("enter", "leave") and s1 == s2, "overlap near %s" % s1
        assert int(s1) > last
        last = int(s1)


def _redis(url, *args):
    """One command on a raw connection (the tests need no Redis client)."""
    import socket
    host, port = url[len("redis://"):].split("/")[0].rsplit(":", 1)
    words = [str(a).encode() for a in args]
    cmd = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(cmd)
        return s.recv(4096)


def test_lost_future_completes_when_the_presence_key_is_deleted(locker, url, request):
    import asyncio

    async def main():
        lock = locker.acquire("lost", expire=0.6)
        lost = lock.lost()
        assert lock.lost() is lost
        assert not lost.done()
        key = "py-%s:lost:serial:%d" % (request.node.name, lock.serial)
        assert _redis(url, "DEL", key) == b":1\r\n"
        await asyncio.wait_for(lost, 30)
        assert lost.result() is None
        assert not lock.held
        with pytest.raises(turn.Lost):
            lock.check()
        with pytest.raises(turn.Lost):
            lock.release()

    asyncio.run(main())


def test_lost_future_stays_pending_for_a_lock_held_normally(locker):
    import asyncio

    async def main():
        lock = locker.acquire("held", expire=1.5)  # renewed every 500 ms
        assert lock.lost_fd() >= 0
        lost = lock.lost()
        done, _ = await asyncio.wait([lost], timeout=3.0)
        assert not done and lock.held
        lock.release()
        await asyncio.sleep(0.2)
        assert not lost.done()
        with pytest.raises(turn.InvalidArgument):
            lock.lost_fd()

    asyncio.run(main())


def test_a_canceled_lost_future_is_replaced(locker):
    import asyncio

    async def main():
        lock = locker.acquire("again", expire=1.5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(lock.lost(), 0.2)
        again = lock.lost()
        assert not again.done()
        locker.close()  # the locker freed under the lock: lost
        await asyncio.wait_for(again, 30)
        with pytest.raises(turn.Lost):
            lock.release()

    asyncio.run(main())
