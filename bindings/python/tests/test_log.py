"""The library's messages go to the logger "turn" of the logging module: a
slow heartbeat (the server paused with CLIENT PAUSE while a lock with a
1.5 s lease is held) is a warning there."""

import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import turn


class Keep(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []
        self.arrived = threading.Event()

    def emit(self, record):
        self.records.append(record)
        self.arrived.set()


def pause(url, ms):
    """CLIENT PAUSE on a raw connection of its own: every client's commands
    wait `ms` milliseconds."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=5) as s:
        args = [b"CLIENT", b"PAUSE", str(ms).encode()]
        s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        assert s.recv(64).startswith(b"+OK")


def test_a_slow_beat_is_a_warning_of_the_turn_logger(url):
    keep = Keep()
    logger = logging.getLogger("turn")
    logger.addHandler(keep)
    try:
        with turn.Locker(url=url, prefix="py-log") as locker:
            with locker.lock("log", label="held", expire=1.5):
                # Beats come every 500 ms, the first 500 ms after the grant:
                # pause half-way to it, and again (off the beat) until one
                # is slower than a third of the lease.
                time.sleep(0.25)
                for _ in range(8):
                    pause(url, 900)
                    if keep.arrived.wait(2.65):
                        break
    finally:
        logger.removeHandler(keep)
    assert keep.records, "no message from the library"
    record = keep.records[0]
    assert record.name == "turn"
    assert record.levelno == logging.WARNING
    assert "heartbeat is too slow" in record.getMessage()
    assert not record.getMessage().endswith("\n")


def test_the_levels_map_onto_logging_levels():
    keep = Keep()
    logger = logging.getLogger("turn")
    logger.addHandler(keep)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        for level in (1, 2, 3, 4):
            turn._log(None, level, ("level %d" % level).encode())
        turn._log(None, 2, b"not UTF-8: \xff")
    finally:
        logger.setLevel(old)
        logger.removeHandler(keep)
    assert [(r.levelno, r.getMessage()) for r in keep.records] == [
        (logging.ERROR, "level 1"), (logging.WARNING, "level 2"),
        (logging.INFO, "level 3"), (logging.DEBUG, "level 4"),
        (logging.WARNING, "not UTF-8: \ufffd"),
    ]
