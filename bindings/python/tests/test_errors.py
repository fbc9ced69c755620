"""Connection errors say what failed: the address (host:port or the socket
path), never the password; a refused password, or none given to a server
that wants one, is AuthenticationFailed, a ConnectionFailed (not the
ProtocolError a missing password used to give)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import turn

PASSWORD = "sekret-pw"


@pytest.fixture
def guarded():
    """A redis-server of this test's own that wants PASSWORD, on a unix
    socket only; with an ACL user "limited" (password "lim-pw") that may
    run no command at all. Yields the socket's path."""
    binary = os.environ.get("TURN_TEST_REDIS_SERVER", "redis-server")
    folder = tempfile.mkdtemp(prefix="turn-py-")
    path = os.path.join(folder, "redis.sock")
    server = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", path, "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", folder,
         "--requirepass", PASSWORD, "--user", "limited", "on", ">lim-pw", "-@all"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert server.poll() is None, "redis-server exited"
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(path)
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"-NOAUTH"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        yield path
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def failure(locker):
    """The exception of the locker's first call (it connects then)."""
    with pytest.raises(turn.TurnError) as caught:
        locker.status("errors")
    return caught.value


def test_a_wrong_or_missing_password_is_authentication_failed(guarded):
    for kwargs in ({"password": "wrong-pw"}, {}, {"username": "nobody", "password": "wrong-pw"}):
        e = failure(turn.Locker(unix_socket_path=guarded, **kwargs))
        assert type(e) is turn.AuthenticationFailed, (kwargs, e)
        assert isinstance(e, turn.ConnectionFailed) and isinstance(e, ConnectionError)
        assert e.code == 3 and e.name == "TURN_ERR_CONNECTION"
        text = str(e)
        assert "authentication failed at " + guarded in text, text
        assert "wrong-pw" not in text and PASSWORD not in text, text
    # The right password works.
    locker = turn.Locker(unix_socket_path=guarded, password=PASSWORD)
    with locker.lock("errors", "ok"):
        pass
    locker.close()


def test_a_user_without_permission_is_a_connection_failure(guarded):
    e = failure(turn.Locker(unix_socket_path=guarded, username="limited", password="lim-pw"))
    assert type(e) is turn.ConnectionFailed, e
    assert "permission denied at " + guarded in str(e) and "lim-pw" not in str(e), str(e)


def test_a_closed_port_names_the_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = failure(turn.Locker(port=port, host="127.0.0.1", password="pw-unused",
                            socket_connect_timeout=2))
    assert type(e) is turn.ConnectionFailed, e
    text = str(e)
    assert "cannot connect to redis at 127.0.0.1:%d" % port in text, text
    assert "pw-unused" not in text, text


def test_other_codes_keep_their_classes(url):
    with pytest.raises(turn.InvalidArgument):
        turn.Locker(url=url).status("")
    assert turn._error(3, "cannot connect to redis at h:1: refused").__class__ is \
        turn.ConnectionFailed
    assert turn._error(4, "authentication failed").__class__ is turn.Timeout
    assert turn._error(10, "x").__class__ is turn.ProtocolError
    assert turn._error(12345, "x").__class__ is turn.TurnError
