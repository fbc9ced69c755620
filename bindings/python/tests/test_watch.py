"""What a program can watch: the locker's metrics (text, and a
prometheus_client collector), each ticket's facts in a status, and a
waiting acquire's position (blocking: a callback; asyncio: the
awaitable's ``ahead``)."""

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

import turn


def _until(predicate, limit=20.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _queued(locker, resource, n):
    _until(lambda: len((locker.status(resource) or turn.Status(resource, 0, 0, [])).tickets) == n)


def test_metrics_text_counts_acquires_at_once_and_after_waiting(locker):
    text = locker.metrics()
    assert '# TYPE turn_acquires_total counter' in text
    assert 'turn_acquires_total{granted="at_once"} 0\n' in text
    held = locker.acquire("m")
    done = threading.Event()

    def waiter():
        locker.acquire("m", label="second").release()
        done.set()

    t = threading.Thread(target=waiter)
    t.start()
    _queued(locker, "m", 2)
    held.release()
    t.join()
    assert done.is_set()
    text = locker.metrics()
    assert 'turn_acquires_total{granted="at_once"} 1\n' in text
    assert 'turn_acquires_total{granted="after_waiting"} 1\n' in text
    assert "turn_wait_seconds_count 2\n" in text
    assert "turn_hold_seconds_count 2\n" in text
    with pytest.raises(turn.WouldBlock):
        with locker.lock("m2"):
            locker.acquire("m2", timeout=0)
    assert 'turn_acquire_failures_total{reason="would_block"} 1\n' in locker.metrics()


def test_the_collector_gives_prometheus_client_the_counters_and_histograms(locker):
    prometheus_client = pytest.importorskip("prometheus_client")
    import turn.metrics

    registry = prometheus_client.CollectorRegistry()
    registry.register(turn.metrics.collector(locker))
    locker.acquire("c").release()
    with pytest.raises(turn.WouldBlock):
        with locker.lock("c"):
            locker.acquire("c", timeout=0)

    value = registry.get_sample_value
    assert value("turn_acquires_total", {"granted": "at_once"}) == 2
    assert value("turn_acquires_total", {"granted": "after_waiting"}) == 0
    assert value("turn_acquire_failures_total", {"reason": "would_block"}) == 1
    assert value("turn_locks_lost_total") == 0
    assert value("turn_wait_seconds_count") == 2
    assert value("turn_wait_seconds_bucket", {"le": "+Inf"}) == 2
    assert value("turn_hold_seconds_count") == 2
    families = {m.name: m.type for m in registry.collect()}
    assert families["turn_acquires"] == "counter"
    assert families["turn_wait_seconds"] == "histogram"
    assert families["turn_hold_seconds"] == "histogram"
    exposition = prometheus_client.generate_latest(registry).decode()
    assert 'turn_acquires_total{granted="at_once"} 2.0' in exposition
    # Each scrape reads the locker again.
    locker.acquire("c").release()
    assert value("turn_acquires_total", {"granted": "at_once"}) == 3


def test_import_turn_does_not_need_prometheus_client():
    here = os.path.join(os.path.dirname(__file__), "..")
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "import turn\n"
        "assert callable(turn.Locker.metrics)\n"
        "try:\n"
        "    import turn.metrics\n"
        "except ImportError:\n"
        "    print('no collector without prometheus_client')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=here), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "no collector without prometheus_client\n"


def test_status_tells_holders_and_waiters_apart_with_their_facts(url):
    prefix = "py-watch-facts"
    locker = turn.Locker(url=url, prefix=prefix)
    held = locker.acquire("printer", label="holder", expire=8)
    t = threading.Thread(target=lambda: locker.acquire("printer", label="waiter").release())
    t.start()
    _queued(locker, "printer", 2)
    # A ticket of turn 1.0's kind: a presence key without this library's
    # identity.
    redis = pytest.importorskip("redis")
    r = redis.Redis.from_url(url)
    serial = r.incr(prefix + ":printer:dispenser")
    r.set("%s:printer:serial:%d" % (prefix, serial), "python", ex=30)
    time.sleep(0.2)

    s = locker.status("printer")
    assert s.kind == "plain" and s.permits is None
    assert [t.label for t in s.holders] == ["holder"]
    assert [t.label for t in s.waiters] == ["waiter", "python"]
    h, w, py = s.tickets
    assert h == (1, "holder"), "still a (serial, label) pair"
    assert h.held and h.ours and h.position is None and h.exclusive and h.weight == 1
    assert h.token == held.token
    assert h.held_for >= 0.2 and h.waited_for is None
    assert 0 < h.lease_left <= 8
    assert not w.held and w.ours and w.position == 1 and w.token > held.token
    assert w.waited_for >= 0.2 and w.held_for is None
    assert not py.ours and py.token is None and py.waited_for is None and py.position == 2
    assert 0 < py.lease_left <= 30
    r.delete("%s:printer:serial:%d" % (prefix, serial))
    held.release()
    t.join()
    locker.close()


def test_status_of_a_semaphore_gives_its_permits_and_each_weight(locker):
    with locker.lock("sem", label="big", mode=turn.Semaphore(3, 2)):
        s = locker.status("sem")
        assert (s.kind, s.permits) == ("semaphore", 3)
        (t,) = s.tickets
        assert t.held and t.weight == 2 and not t.exclusive
    with locker.lock("rw", mode=turn.SHARED):
        assert locker.status("rw").kind == "rwlock"
        assert not locker.status("rw").tickets[0].exclusive


def test_a_blocking_wait_hears_its_position_through_on_position(locker):
    held = [locker.acquire("line", label="holder")]
    others = []
    t = threading.Thread(target=lambda: others.append(locker.acquire("line", label="second")))
    t.start()
    _queued(locker, "line", 2)
    heard = []

    def on_position(ahead):
        heard.append(ahead)
        if ahead == 2 and len(heard) == 1:
            held.pop().release()  # the holder goes: one ahead, then none

    def third():
        lock = locker.acquire("line", label="third", on_position=on_position)
        _until(lambda: others)
        lock.release()

    def release_second():
        _until(lambda: others)
        time.sleep(0.2)
        others[0].release()

    helper = threading.Thread(target=release_second)
    helper.start()
    third()
    helper.join()
    t.join()
    assert heard[0] == 2, heard
    assert heard == sorted(heard, reverse=True) and 0 not in heard, heard


def test_an_exception_from_on_position_withdraws_the_ticket(locker):
    held = locker.acquire("gone")

    def refuse(ahead):
        raise RuntimeError("no, %d ahead" % ahead)

    with pytest.raises(RuntimeError, match="no, 1 ahead"):
        locker.acquire("gone", on_position=refuse)
    assert [t.label for t in locker.status("gone").tickets] == [""]
    held.release()
    assert locker.status("gone").tickets == []


def test_an_awaited_acquire_shows_how_many_are_ahead(locker):
    async def main():
        held = locker.acquire("aio-line", label="holder")
        acquiring = locker.aacquire("aio-line", label="waiter")
        assert acquiring.ahead is None, "not drawn yet"
        task = asyncio.ensure_future(acquiring)
        while acquiring.ahead is None:
            await asyncio.sleep(0.01)
        assert acquiring.ahead == 1
        locked = locker.alock("aio-line", label="third")
        third = asyncio.ensure_future(locked.__aenter__())
        while not locked.ahead:
            await asyncio.sleep(0.01)
        assert locked.ahead == 2
        held.release()
        lock = await task
        assert acquiring.ahead == 0
        lock.release()
        await third
        assert locked.ahead == 0
        await locked.__aexit__(None, None, None)
        # As a task, too.
        task = asyncio.get_running_loop().create_task(locker.aacquire("aio-line"))
        (await task).release()

    asyncio.run(main())
