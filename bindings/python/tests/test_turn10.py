"""turn 1.0 programs run unchanged: redis-py's keyword arguments, the
decorator, str() of names and labels, turn 1.0's defaults, the lazy
connection, the exceptions turn 1.0 programs catch, "N crashed!", and
Ctrl-C during a wait."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis

import turn


def parts(url):
    host, port_db = url[len("redis://"):].rsplit(":", 1)
    port, db = port_db.split("/")
    return host, int(port), int(db)


def dead_port():
    with socket.socket() as s:  # a free port, closed again: nothing listens
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def r(url):
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client
    client.close()


def test_redis_keywords_are_mapped(url, r, request):
    host, port, db = parts(url)
    prefix = "py-" + request.node.name
    locker = turn.Locker(host=host, port=port, db=db, socket_timeout=2,
                         socket_connect_timeout=1.5, max_connections=4,
                         decode_responses=True, encoding="utf-8", prefix=prefix)
    with locker.lock("kw", label="keywords") as lock:
        assert r.get("%s:kw:serial:%d" % (prefix, lock.serial)) == "keywords"
    locker.close()

    # username and password (an ACL user made for this test).
    r.execute_command("ACL", "SETUSER", "turn-py", "on", ">s3cret p@ss", "~*", "&*", "+@all")
    try:
        with turn.Locker(host=host, port=port, db=db, username="turn-py",
                         password="s3cret p@ss", prefix=prefix).lock("auth"):
            pass
        with pytest.raises(turn.TurnError):
            with turn.Locker(host=host, port=port, username="turn-py", password="wrong").lock("auth"):
                pass
    finally:
        r.execute_command("ACL", "DELUSER", "turn-py")

    # How TLS keywords become the URL (a TLS server is tested in tests/connecting.rs).
    assert turn.Locker(host="h", port=1, db=2, ssl=True)._url == "rediss://h:1/2"
    assert turn.Locker(host="h", ssl=True, ssl_cert_reqs="none")._url == "rediss://h:6379/0#insecure"
    assert turn.Locker(host="::1", port=7)._url == "redis://[::1]:7/0"
    assert turn.Locker(unix_socket_path="/run/r.sock", db=3, password="p w")._url == \
        "unix:///run/r.sock?db=3&pass=p%20w"


def test_unix_socket_path(unix_socket, request):
    locker = turn.Locker(unix_socket_path=unix_socket, prefix="py-" + request.node.name)
    with locker.lock("sock") as lock:
        assert locker.status("sock").tickets == [(lock.serial, "")]
    locker.close()


def test_keywords_without_meaning_are_named():
    with pytest.raises(turn.UnsupportedOption) as e:
        turn.Locker(socket_keepalive=True, retry_on_timeout=True)
    assert "socket_keepalive" in str(e.value) and "retry_on_timeout" in str(e.value)
    with pytest.raises(turn.UnsupportedOption, match="ssl_check_hostname"):
        turn.Locker(ssl=True, ssl_check_hostname=False)
    with pytest.raises(turn.UnsupportedOption, match="encoding"):
        turn.Locker(encoding="latin-1")
    with pytest.raises(TypeError, match="no_such_thing"):
        turn.Locker(no_such_thing=1)
    assert issubclass(turn.UnsupportedOption, TypeError)


def test_decorator(locker):
    seen = []

    @locker.lock("decorated", label="job")
    def work(x):
        status = locker.status("decorated")
        seen.append((x, [label for _, label in status.tickets]))
        return x * 2

    assert work(1) == 2 and work(2) == 4
    assert seen == [(1, ["job"]), (2, ["job"])]
    assert locker.status("decorated").tickets == []
    assert work.__name__ == "work"


def test_names_and_labels_are_strd(locker, r, request):
    prefix = "py-" + request.node.name
    with locker.lock(42, label=3.5) as lock:
        assert r.get("%s:42:serial:%d" % (prefix, lock.serial)) == "3.5"
        assert locker.status(42).tickets == [(lock.serial, "3.5")]
        assert locker.status("42").tickets == [(lock.serial, "3.5")]
    with locker.lock(b"raw", label=None) as lock:  # as turn 1.0's format()
        assert r.get("%s:b'raw':serial:%d" % (prefix, lock.serial)) == "None"


def test_turn_1_0_defaults(locker, r, request):
    import inspect
    for method in (turn.Locker.lock, turn.Locker.acquire):
        params = inspect.signature(method).parameters
        assert params["expire"].default == 60 and params["patience"].default == 60
    with locker.lock("defaults") as lock:
        ttl = r.pttl("py-%s:defaults:serial:%d" % (request.node.name, lock.serial))
        assert 30000 < ttl <= 60000, ttl  # a 60 s lease (the library's own default is 10 s)


def test_lazy_connection_and_the_errors_turn_1_0_programs_catch(url, r):
    before = len(r.client_list())
    lazy = turn.Locker(url=url)
    assert len(r.client_list()) == before  # the constructor does not connect
    lazy.status("none")
    assert len(r.client_list()) > before
    lazy.close()

    dead = turn.Locker(host="127.0.0.1", port=dead_port(), socket_connect_timeout=1)  # no error yet
    with pytest.raises(redis.exceptions.ConnectionError):
        with dead.lock("x"):
            pass
    with pytest.raises(ConnectionError):
        dead.status("x")
    with pytest.raises(turn.ConnectionFailed):
        dead.bump("x")
    try:
        dead.acquire("x")
    except redis.exceptions.RedisError as e:  # turn 1.0 programs' broadest clause
        assert isinstance(e, turn.TurnError) and e.name == "TURN_ERR_CONNECTION"
    else:
        pytest.fail("no error")


def test_without_redis_py_connection_errors_are_builtin(url):
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import turn\n"
        "assert issubclass(turn.ConnectionFailed, ConnectionError)\n"
        "print('builtin only', [c.__module__ for c in turn.ConnectionFailed.__mro__])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.join(os.path.dirname(__file__), ".."), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "redis" not in out.stdout.split("builtin only")[1]


def test_an_exception_in_the_block_says_crashed_and_hands_on(locker, r, request):
    prefix = "py-" + request.node.name
    pubsub = r.pubsub()
    pubsub.subscribe("%s:crash:external" % prefix)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"

    class Boom(Exception):
        pass

    got = []
    waiter = threading.Thread(target=lambda: got.append(
        locker.acquire("crash", label="next", patience=600)))
    with pytest.raises(Boom):
        with locker.lock("crash", label="crasher") as lock:
            serial = lock.serial
            waiter.start()
            while len(locker.status("crash").tickets) < 2:
                time.sleep(0.01)
            raise Boom()
    waiter.join(30)
    assert got and got[0].serial == serial + 1  # the turn went on
    got[0].release()

    lines = []
    want = "crash: %d started" % (serial + 1)
    deadline = time.time() + 10
    while time.time() < deadline and want not in lines:
        m = pubsub.get_message(timeout=0.5)
        if m and m["type"] == "message":
            lines.append(m["data"])
    pubsub.close()
    print(lines)
    crashed = "crash: %d crashed!" % serial
    assert crashed in lines, lines
    assert lines.index(crashed) < lines.index(want), lines


CHILD = r"""
import signal, sys, time
sys.path.insert(0, sys.argv[1])
import turn
signal.signal(signal.SIGINT, signal.default_int_handler)
locker = turn.Locker(url=sys.argv[2], prefix=sys.argv[3])
print("waiting", flush=True)
try:
    locker.acquire("ctrl-c", label="child")
except KeyboardInterrupt:
    print("interrupted at %.6f" % time.monotonic(), flush=True)
    raise
print("acquired", flush=True)
"""


def test_ctrl_c_ends_a_wait_and_leaves_no_ticket(url, locker, request):
    package = os.path.join(os.path.dirname(__file__), "..")
    holder = locker.acquire("ctrl-c", label="holder")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, package, url, "py-" + request.node.name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "waiting"
        deadline = time.time() + 30
        while len(locker.status("ctrl-c").tickets) < 2 and time.time() < deadline:
            time.sleep(0.01)
        assert len(locker.status("ctrl-c").tickets) == 2
        sent = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # Uncaught, KeyboardInterrupt ends Python by SIGINT.
    assert child.returncode == -signal.SIGINT, (child.returncode, out, err)
    assert "KeyboardInterrupt" in err and "acquired" not in out
    at = float(out.split("interrupted at ")[1].split()[0])
    print("Ctrl-C ended the wait after %.1f ms" % ((at - sent) * 1000))
    # The child's ticket is gone: only the holder is left.
    assert locker.status("ctrl-c").tickets == [(holder.serial, "holder")]
    holder.release()
