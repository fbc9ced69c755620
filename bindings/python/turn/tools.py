"""turn 1.0's ``turn.tools``, the functions behind the ``turn`` console
script: ``follow``, ``lock``, ``reset`` and ``status`` of a list of
resources, with redis-py's connection keywords (``host``, ``port``, ``db``,
``password``), printing what turn 1.0 printed.

``status``, ``reset`` and ``lock`` of named resources go through libturn;
``follow``, and every form that lists the queues (no resource named), read
Redis with redis-py (``pip install turn[redis]``)."""

import os
import re
import signal
from typing import Any, List, Optional, Sequence

from . import Busy, Locker
from .core import PREFIX

__all__ = ["SEPARATOR", "find_resources", "follow", "lock", "reset", "status"]

SEPARATOR: str = 60 * "-"

_TEMPLATE = "{:<50}{:>10}"


def _client(kwargs: Any) -> Any:
    import redis

    return redis.Redis(decode_responses=True, **kwargs)


def find_resources(client: Any) -> List[str]:
    """The resources that have a queue, found with a redis-py client."""
    pattern = re.compile(re.escape(PREFIX) + ":(.*):dispenser$")
    found = []
    for key in client.scan_iter(PREFIX + ":*:dispenser"):
        match = pattern.match(key if isinstance(key, str) else key.decode("utf-8"))
        if match:
            found.append(match.group(1))
    return found


def follow(resources: Sequence[str], **kwargs: Any) -> None:
    """Prints the messages of the resources' external channels (every
    queue's when none is named) until Ctrl-C."""
    client = _client(kwargs)
    names = list(resources) or find_resources(client)
    if not names:
        return
    pubsub = client.pubsub()
    pubsub.subscribe(*["%s:%s:external" % (PREFIX, r) for r in names])
    try:
        while True:
            message = pubsub.get_message(timeout=None)
            if message and message["type"] == "message":
                print(message["data"])
    except KeyboardInterrupt:
        pass
    finally:
        pubsub.close()


def lock(resources: Sequence[str], *args: Any, **kwargs: Any) -> None:
    """Locks the resources (every queue's when none is named), one process
    each, until Ctrl-C, for maintenance."""
    names = list(resources) or find_resources(_client(kwargs))
    if not names:
        return
    while len(names) > 1:
        pid = os.fork()
        names = names[:1] if pid else names[1:]
    resource = names[0]
    locker = Locker(**kwargs)  # made after the fork: its threads are this process's
    try:
        print("{}: acquiring".format(resource))
        with locker.lock(resource, label="lock tool"):
            print("{}: locked".format(resource))
            try:
                signal.pause()
            except KeyboardInterrupt:
                print("{}: released".format(resource))
    except KeyboardInterrupt:
        print("{}: canceled".format(resource))
    finally:
        locker.close()


def reset(resources: Sequence[str], *args: Any, **kwargs: Any) -> None:
    """Bumps past dead tickets, then removes the idle queues (every queue
    when none is named)."""
    kwargs.pop("test", None)
    names = list(resources) or find_resources(_client(kwargs))
    with Locker(**kwargs) as locker:
        for resource in names:
            if locker.status(resource) is None:
                print('No such queue: "{}".'.format(resource))
                continue
            locker.bump(resource)
            try:
                locker.reset(resource)
            except Busy:
                now = locker.status(resource)
                size = len(now.tickets) if now is not None else 0
                print('"{}" is in use by {} user(s).'.format(resource, size))


def status(resources: Sequence[str], *args: Any, **kwargs: Any) -> None:
    """Prints each resource's indicator and live tickets (label, serial);
    with none named, every queue's size, largest first."""
    if resources:
        with Locker(**kwargs) as locker:
            first = True
            for resource in resources:
                now = locker.status(resource)
                if now is None:
                    continue
                if not first:
                    print()
                first = False
                print(_TEMPLATE.format(resource, now.indicator))
                print(SEPARATOR)
                for serial, label in now.tickets:
                    print(_TEMPLATE.format(label, serial))
        return
    client = _client(kwargs)
    names = find_resources(client)
    if not names:
        return
    dispensers = client.mget(["%s:%s:dispenser" % (PREFIX, r) for r in names])
    indicators = client.mget(["%s:%s:indicator" % (PREFIX, r) for r in names])
    sizes: List[Optional[int]] = [
        int(d) - int(i) + 1 if d is not None and i is not None else 0
        for d, i in zip(dispensers, indicators)]
    print(_TEMPLATE.format("Resource", "Queue size"))
    print(SEPARATOR)
    for size, resource in sorted(zip(sizes, names), reverse=True):
        print(_TEMPLATE.format(resource, size))
