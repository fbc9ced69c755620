"""turn 1.0's names a program can reach (turn.core.PREFIX, turn.tools,
turn.console.main, Locker.client and Locker.cache), the package's version
(above turn 1.0's) and the reprs."""

import re
import uuid

import redis

import turn
import turn.console
import turn.core
import turn.tools


def parts(url):
    host, port_db = url[len("redis://"):].rsplit(":", 1)
    port, db = port_db.split("/")
    return host, int(port), int(db)


def test_version_is_above_turn_1_0_and_is_the_packages():
    from turn._version import __version__
    assert turn.__version__ == __version__
    major, minor, patch = (int(p) for p in turn.__version__.split("."))
    assert major == 2 and (major, minor, patch) > (1, 0, 0)


def test_core_prefix_is_the_default_key_prefix(url):
    assert turn.core.PREFIX == "turn"
    assert turn.core.Locker is turn.Locker
    host, port, db = parts(url)
    resource = "core-" + uuid.uuid4().hex
    with turn.Locker(host=host, port=port, db=db) as locker, locker.lock(resource):
        client = redis.Redis(host=host, port=port, db=db)
        assert client.exists("%s:%s:dispenser" % (turn.core.PREFIX, resource))


def test_client_is_a_decoding_redis_client_shared_through_the_cache(url):
    host, port, db = parts(url)
    first = turn.Locker(host=host, port=port, db=db)
    second = turn.Locker(host=host, port=port, db=db)
    assert isinstance(first.client, redis.Redis)
    assert first.client is second.client
    assert first.client in turn.Locker.cache.values()
    first.client.set("compat-key", "text")
    assert first.client.get("compat-key") == "text"  # decode_responses, as turn 1.0's
    by_url = turn.Locker(url=url)
    assert by_url.client.ping()


def test_tools_status_prints_turn_1_0s_report(url, capsys):
    host, port, db = parts(url)
    resource = "tools-" + uuid.uuid4().hex
    with turn.Locker(host=host, port=port, db=db) as locker:
        with locker.lock(resource, label="report job") as lock:
            turn.tools.status([resource], host=host, port=port, db=db)
            out = capsys.readouterr().out.splitlines()
            assert out[0] == "{:<50}{:>10}".format(resource, lock.serial)
            assert out[1] == turn.tools.SEPARATOR
            assert out[2] == "{:<50}{:>10}".format("report job", lock.serial)
            turn.tools.status([], host=host, port=port, db=db)
            summary = capsys.readouterr().out
            assert re.search(r"^%s\s+1$" % resource, summary, re.M), summary
        turn.tools.reset([resource], host=host, port=port, db=db)
        assert locker.status(resource) is None


def test_console_main_runs_turn_1_0s_commands(url, capsys):
    host, port, db = parts(url)
    resource = "console-" + uuid.uuid4().hex
    with turn.Locker(host=host, port=port, db=db) as locker:
        with locker.lock(resource, label="console"):
            turn.console.main(["--host", host, "--port", str(port), "--db", str(db),
                               "status", resource])
            assert "console" in capsys.readouterr().out
            turn.console.main(["--host", host, "--port", str(port), "--db", str(db),
                               "reset", resource])
            assert "is in use by 1 user(s)" in capsys.readouterr().out


def test_reprs_say_what_they_hold(url, locker):
    assert re.match(r"<turn.Locker redis://[^ ]+ (connected|not connected)>", repr(locker))
    secret = turn.Locker(url="redis://:hunter2@localhost:6379/0")
    assert "hunter2" not in repr(secret) and "not connected" in repr(secret)
    with locker.lock("repr", label="shown") as lock:
        assert repr(lock) == "<turn.Lock 'repr' serial=%d token=%d held>" % (lock.serial,
                                                                            lock.token)
        status = locker.status("repr")
        assert "kind='plain'" in repr(status) and "'shown'" in repr(status)
        assert "held=True" in repr(status.tickets[0])
    assert repr(lock).endswith(" released>")


def _lose(url, prefix, resource, lock):
    """Deletes the lock's presence key and waits until the lock knows it is
    lost (its lost fd turns readable)."""
    import select

    host, port, db = parts(url)
    client = redis.Redis(host=host, port=port, db=db)
    assert client.delete("%s:%s:serial:%d" % (prefix, resource, lock.serial)) == 1
    assert select.select([lock.lost_fd()], [], [], 30)[0]


def test_leaving_the_with_block_of_a_lost_lock_raises_lost(locker, url, request):
    import pytest

    with pytest.raises(turn.Lost):
        with locker.lock("lost-exit", expire=0.6) as lock:
            _lose(url, "py-" + request.node.name, "lost-exit", lock)
    assert not lock.held


def test_the_blocks_own_exception_wins_over_lost(locker, url, request):
    import pytest

    with pytest.raises(KeyError):
        with locker.lock("lost-raise", expire=0.6) as lock:
            _lose(url, "py-" + request.node.name, "lost-raise", lock)
            raise KeyError("the block's")
