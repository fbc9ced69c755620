"""turn 1.0's ``turn.core``: the names a turn 1.0 program can reach.

``PREFIX`` is the key prefix turn 1.0 used for every Redis key (the
library's default ``prefix``); ``Locker`` is ``turn.Locker``. turn 1.0's
internals (``Keys``, ``Queue``, ``Keeper``, ``Subscription``) are not
provided: the library keeps the queue."""

from . import Locker

__all__ = ["PREFIX", "Locker"]

#: The prefix of every Redis key of a queue (``turn:RESOURCE:dispenser``, ...).
PREFIX: str = "turn"
