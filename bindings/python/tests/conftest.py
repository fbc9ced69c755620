import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


@pytest.fixture
def url():
    """The redis-server of this run (tests/bindings.rs starts one on a free
    port and sets TURN_TEST_REDIS_URL)."""
    value = os.environ.get("TURN_TEST_REDIS_URL")
    if not value:
        pytest.fail("TURN_TEST_REDIS_URL is not set: run these tests through `make test`")
    return value


@pytest.fixture
def locker(url, request):
    import turn
    with turn.Locker(url=url, prefix="py-" + request.node.name) as locker:
        yield locker


@pytest.fixture
def unix_socket():
    """The unix socket of the same redis-server (TURN_TEST_REDIS_SOCKET)."""
    value = os.environ.get("TURN_TEST_REDIS_SOCKET")
    if not value:
        pytest.fail("TURN_TEST_REDIS_SOCKET is not set: run these tests through `make test`")
    return value
