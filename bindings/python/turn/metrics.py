"""The locker's own counters and histograms for prometheus_client.

``collector(locker)`` is a collector to register with a
prometheus_client registry: at each scrape it reads ``locker.metrics()``
(no round trip) and gives its metric families (``turn_acquires_total``,
``turn_wait_seconds``, ...; see Locker.metrics)::

    import prometheus_client
    import turn.metrics

    locker = turn.Locker(url="redis://localhost:6379")
    prometheus_client.REGISTRY.register(turn.metrics.collector(locker))
    prometheus_client.start_http_server(9100)

This module needs prometheus_client (``pip install prometheus-client``);
``import turn`` does not.
"""

from typing import TYPE_CHECKING, Iterable, List

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from . import Locker

__all__ = ["collector", "LockerCollector"]


class LockerCollector(Collector):
    """A prometheus_client collector of one locker's metrics: counters
    (``turn_acquires_total`` by ``granted``, ``turn_acquire_failures_total``
    by ``reason``, ``turn_locks_lost_total``, ``turn_handoffs_total``,
    ``turn_heartbeat_beats_total``, ``turn_heartbeat_slow_beats_total``,
    ``turn_reconnections_total``) and histograms (``turn_wait_seconds``,
    ``turn_hold_seconds``). Two lockers in one registry would give the same
    names: register one collector per registry."""

    def __init__(self, locker: "Locker") -> None:
        self._locker = locker

    def collect(self) -> Iterable[Metric]:
        return text_string_to_metric_families(self._locker.metrics())

    def describe(self) -> List[Metric]:
        # The families, without waiting for a scrape (the registry checks
        # their names when the collector is registered).
        return list(self.collect())


def collector(locker: "Locker") -> LockerCollector:
    """The collector of `locker`'s metrics, to register with a
    prometheus_client registry (see LockerCollector)."""
    return LockerCollector(locker)
