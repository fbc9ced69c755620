"""A turn 1.0 client taking turns, logging its tickets.

worker.py PORT RESOURCE LABEL ROUNDS LOGFILE EXPIRE PATIENCE HOLD_SECONDS

Writes "enter N LABEL" and "leave N LABEL" lines to LOGFILE (appending) for
each turn, N being its ticket, and "held N" on stdout when it has the turn.
"""
import sys
import time

from turn.core import Locker, Queue

port, resource, label = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rounds, path = int(sys.argv[4]), sys.argv[5]
expire, patience, hold = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])

locker = Locker(host="127.0.0.1", port=port, db=0)
with open(path, "a", buffering=1) as log:
    for _ in range(rounds):
        queue = Queue(client=locker.client, resource=resource)
        with queue.draw(label=label, expire=expire) as number:
            queue.wait(number=number, patience=patience)
            log.write("enter %d %s\n" % (number, label))
            print("held %d" % number, flush=True)
            time.sleep(hold)
            log.write("leave %d %s\n" % (number, label))
        queue.close()
