"""asyncio: locker.alock / aacquire wait on the pending acquire's fd with
loop.add_reader (no thread per task); cancelling a task withdraws its ticket."""

import asyncio
import os
import time

import pytest

import turn


def _threads():
    return len(os.listdir("/proc/self/task"))


def test_200_tasks_half_canceled_the_rest_served_in_ticket_order(locker):
    resource = "aio"
    count = 200
    # Canceled while waiting: 50 before the holder lets go, and 50 by the
    # task served just before them, right after its release (their turn
    # may have come meanwhile: it is handed on).
    early = set(range(1, count, 4))
    late = set(range(3, count, 4))

    async def main():
        holder = locker.acquire(resource, label="holder")  # serial 1
        served, inside, overlaps = [], [0], [0]
        tasks = []

        async def worker(i):
            async with locker.alock(resource, label="task %d" % i, expire=10) as lock:
                inside[0] += 1
                overlaps[0] += inside[0] > 1
                served.append((i, lock.serial))
                assert lock.held
                await asyncio.sleep(0)  # the others run while it is held
                inside[0] -= 1
            if i + 1 in late:
                tasks[i + 1].cancel()

        before = _threads()
        started = time.monotonic()
        for i in range(count):
            tasks.append(asyncio.ensure_future(worker(i)))
        # Each task draws its ticket (serial i + 2) in its first step.
        for _ in range(1000):
            await asyncio.sleep(0.01)
            if len(locker.status(resource).tickets) == count + 1:
                break
        drawn = time.monotonic() - started
        waiting = _threads()
        print("\n%d tasks waiting on one loop: %d threads in the process (%d before); "
              "drawn in %.3f s" % (count, waiting, before, drawn))
        assert len(locker.status(resource).tickets) == count + 1
        assert waiting <= before + 2, "a thread per waiting task?"
        for i in early:
            tasks[i].cancel()
        holder.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        print("served %d, canceled %d in %.3f s" % (
            len(served), count - len(served), time.monotonic() - started))
        canceled = {i for i, r in enumerate(results) if isinstance(r, asyncio.CancelledError)}
        failed = [(i, r) for i, r in enumerate(results)
                  if r is not None and not isinstance(r, asyncio.CancelledError)]
        assert not failed, failed
        assert canceled == early | late
        kept = [i for i in range(count) if i not in canceled]
        assert served == [(i, i + 2) for i in kept], "not in ticket order: %r" % served[:10]
        assert overlaps[0] == 0
        # A wait canceled while the locker's notifier thread was stepping
        # it is withdrawn as that step ends (canceling never waits on a
        # round trip).
        for _ in range(500):
            if locker.status(resource).tickets == []:
                break
            await asyncio.sleep(0.01)
        status = locker.status(resource)
        assert status.tickets == [], "tickets left behind: %r" % status.tickets
        assert status.dispenser == count + 1 and status.indicator == count + 2

    asyncio.run(main())


def test_timeouts_leave_no_ticket(locker):
    resource = "aio-timeout"

    async def main():
        holder = locker.acquire(resource, label="holder")
        started = time.monotonic()
        with pytest.raises(turn.Timeout):
            async with locker.alock(resource, label="patient", timeout=0.3):
                raise AssertionError("entered while held")
        print("\nalock timeout=0.3 raised Timeout after %.3f s" % (time.monotonic() - started))
        # asyncio.wait_for cancels the wait: the ticket is withdrawn.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(locker.aacquire(resource, label="wait_for"), 0.3)
        with pytest.raises(turn.WouldBlock):
            await locker.aacquire(resource, label="try", timeout=0)
        # Waits that ended are withdrawn by the locker's notifier thread
        # right after (ending one never waits on a round trip).
        for _ in range(500):
            if [label for _, label in locker.status(resource).tickets] == ["holder"]:
                break
            await asyncio.sleep(0.01)
        assert [label for _, label in locker.status(resource).tickets] == ["holder"]
        holder.release()
        async with locker.alock(resource, label="after", timeout=30) as lock:
            assert lock.serial == 5 and lock.held
        assert locker.status(resource).tickets == []

    asyncio.run(main())


def test_alock_releases_announces_a_crash_and_offers_the_lost_future(locker, url, request):
    from test_turn import _redis

    async def main():
        with pytest.raises(KeyError):
            async with locker.alock("aio-crash", label="crasher"):
                raise KeyError("boom")
        assert locker.status("aio-crash").tickets == []
        async with locker.alock("aio-lost", label="watched", expire=0.6) as lock:
            lost = lock.lost()
            assert not lost.done()
            key = "py-%s:aio-lost:serial:%d" % (request.node.name, lock.serial)
            assert _redis(url, "DEL", key) == b":1\r\n"
            await asyncio.wait_for(lost, 30)
            with pytest.raises(turn.Lost):
                lock.check()
            with pytest.raises(turn.Lost):
                lock.release()

    asyncio.run(main())
