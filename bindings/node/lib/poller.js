'use strict';
// Watches the library's descriptors (pending fds, lost fds) for the whole
// process without a thread per descriptor: one poll(2) over all of them
// and a wake-up pipe, made as one asynchronous call (it runs on koffi's
// worker pool while the event loop goes on), armed again when it returns.
// A descriptor added or removed while the poll runs wakes it through the
// pipe, so the next poll has the new set.
//
// The library closes a descriptor when its pending ends or its lock is
// released; a descriptor must not be closed while a poll has it. remove()
// therefore resolves only once no poll in progress has the descriptor:
// callers end the pending or release the lock after that. A handler runs
// on the event loop with no poll in progress, so it may end its pending.

const { koffi } = require('./ffi');

if (process.platform !== 'linux') {
  throw new Error('the Node.js binding of turn watches descriptors with poll(2) on Linux only');
}

const libc = koffi.load('libc.so.6');
const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
const pipe2 = libc.func('int pipe2(_Out_ int *fds, int flags)');
const read = libc.func('long read(int fd, void *buf, unsigned long count)');
const write = libc.func('long write(int fd, const void *buf, unsigned long count)');

const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const POLLIN = 1;
const POLLFD_SIZE = 8; // struct pollfd { int fd; short events; short revents; }

class Poller {
  constructor() {
    this.entries = new Map(); // fd -> { handler }
    this.inflight = false;
    this.scheduled = false;
    this.afterPoll = []; // resolvers of remove() waiting for the poll to return
    this.pipe = null;
    this.byte = Buffer.alloc(1);
    this.drain = Buffer.alloc(64);
    this.exiting = false;
    // A poll in progress holds a worker of the pool, which Node.js waits
    // for as it exits (process.exit(), an uncaught exception): wake it and
    // arm no other, so that the process exits at once.
    process.once('exit', () => {
      this.exiting = true;
      if (this.inflight) this.wake();
    });
  }

  wakeFds() {
    if (!this.pipe) {
      const fds = [0, 0];
      if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) !== 0) {
        throw new Error(`pipe2 failed (errno ${koffi.errno()})`);
      }
      this.pipe = fds;
    }
    return this.pipe;
  }

  // Calls handler() on the event loop whenever fd is readable, until
  // remove(fd).
  add(fd, handler) {
    this.entries.set(fd, { handler });
    if (this.inflight) this.wake();
    else this.schedule();
  }

  // Stops watching fd; resolves once no poll in progress has it.
  remove(fd) {
    if (!this.entries.delete(fd) || !this.inflight) return Promise.resolve();
    this.wake();
    return new Promise((resolve) => this.afterPoll.push(resolve));
  }

  wake() {
    write(this.wakeFds()[1], this.byte, 1);
  }

  schedule() {
    if (this.exiting || this.inflight || this.scheduled || this.entries.size === 0) return;
    this.scheduled = true;
    // After the microtasks of the handlers that just ran (a grant's
    // continuation often releases at once), so that one poll sees them.
    setImmediate(() => {
      this.scheduled = false;
      this.arm();
    });
  }

  arm() {
    if (this.exiting || this.inflight || this.entries.size === 0) return;
    const [wakeRead] = this.wakeFds();
    const watched = [...this.entries];
    const n = watched.length + 1;
    const buf = Buffer.alloc(n * POLLFD_SIZE);
    buf.writeInt32LE(wakeRead, 0);
    buf.writeInt16LE(POLLIN, 4);
    watched.forEach(([fd], i) => {
      buf.writeInt32LE(fd, (i + 1) * POLLFD_SIZE);
      buf.writeInt16LE(POLLIN, (i + 1) * POLLFD_SIZE + 4);
    });
    this.inflight = true;
    poll.async(buf, n, -1, (err, rc) => {
      this.inflight = false;
      if (buf.readInt16LE(6) !== 0) {
        while (read(wakeRead, this.drain, this.drain.length) > 0);
      }
      const resolvers = this.afterPoll;
      this.afterPoll = [];
      for (const resolve of resolvers) resolve();
      if (!err && rc > 0) {
        watched.forEach(([fd, entry], i) => {
          // Only an entry still watched (not removed, nor replaced by a
          // new descriptor of the same number).
          if (buf.readInt16LE((i + 1) * POLLFD_SIZE + 6) !== 0 && this.entries.get(fd) === entry) {
            try {
              entry.handler();
            } catch (e) {
              process.nextTick(() => {
                throw e;
              });
            }
          }
        });
      }
      this.schedule();
    });
  }
}

module.exports = { poller: new Poller() };
