"""A Python client of the mixed fleet (tests/bindings.rs), through the
ctypes binding: takes the lock ROUNDS times and appends "enter SERIAL
LABEL" and "leave SERIAL LABEL" to LOGFILE while it holds it.

fleet.py REDIS_URL RESOURCE LABEL ROUNDS LOGFILE
"""
import sys
import time

import turn

url, resource, label, rounds, path = sys.argv[1:6]
locker = turn.Locker(url=url)
with open(path, "a", buffering=1) as log:
    for _ in range(int(rounds)):
        with locker.lock(resource, label=label, expire=10, timeout=60) as lock:
            log.write("enter %d %s\n" % (lock.serial, label))
            time.sleep(0.002)
            log.write("leave %d %s\n" % (lock.serial, label))
locker.close()
