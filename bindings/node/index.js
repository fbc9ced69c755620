'use strict';
// turn for Node.js: a FIFO lock kept in Redis, over libturn's C ABI.
//
// A wait holds no thread: the ticket is drawn with a pending acquire and
// its descriptor is watched, with every other descriptor of the process,
// by one poll(2) (lib/poller.js). Calls that wait on Redis (draws,
// releases, withdrawals, status reads, connecting) run on one caller
// thread (lib/caller.js); the event loop never waits on Redis.

const { fn } = require('./lib/ffi');
const { call } = require('./lib/caller');
const { poller } = require('./lib/poller');

const OK = 0;
const INVALID_ARGUMENT = 2;
const TIMEOUT = 4;
const WOULD_BLOCK = 5;

const MAX_RESOURCE_BYTES = 1024;
const MAX_LABEL_BYTES = 4096;
const MAX_ALL_RESOURCES = 64;
const MAX_U32 = 0xffffffff;

/** A failed call: `code` is the result's name without `TURN_ERR_`. */
class TurnError extends Error {
  constructor(code, message, result) {
    super(message || code);
    this.name = 'TurnError';
    this.code = code;
    // The numeric turn_result, when the library answered one.
    this.result = result;
  }
}

function codeName(rc) {
  return fn.turn_result_str(rc).replace(/^TURN_(ERR_)?/, '');
}

function failure(rc, message) {
  if (rc < 0) return new Error(message);
  const code = codeName(rc);
  return new TurnError(code, message ? `${code}: ${message}` : code, rc);
}

function invalid(message) {
  return new TurnError('INVALID_ARGUMENT', `INVALID_ARGUMENT: ${message}`, INVALID_ARGUMENT);
}

function closedError() {
  return new TurnError('CLOSED', 'CLOSED: the locker is closed');
}

// A name for the library: a string of `min` to `max` bytes of UTF-8,
// without NUL (and without control characters when `plain`).
function checkName(value, what, min, max, plain) {
  if (typeof value !== 'string') throw invalid(`${what} must be a string, not ${typeof value}`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes < min || bytes > max) throw invalid(`${what} must be ${min} to ${max} bytes of UTF-8, not ${bytes}`);
  if (value.includes('\0') || (plain && /\p{Cc}/u.test(value))) {
    throw invalid(`${what} must not contain control characters`);
  }
  if (value.isWellFormed && !value.isWellFormed()) throw invalid(`${what} is not well-formed Unicode`);
  return value;
}

const checkResource = (r) => checkName(r, 'the resource', 1, MAX_RESOURCE_BYTES, true);

// Seconds (a finite number >= 0) as whole milliseconds, rounded up.
function millis(value, what, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid(`${what} must be a finite number of seconds >= 0, not ${String(value)}`);
  }
  const ms = Math.ceil(value * 1000);
  if (ms < min || ms > max) throw invalid(`${what} must be ${min / 1000} to ${max / 1000} seconds, not ${value}`);
  return ms;
}

function checkOptions(options, known) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw invalid('the options must be an object');
  for (const key of Object.keys(options)) {
    if (!known.includes(key) && options[key] !== undefined) throw invalid(`unknown option ${key}`);
  }
  return options;
}

const WAIT_OPTIONS = ['label', 'expire', 'patience', 'timeout', 'signal', 'onPosition'];

// How often the waits with onPosition look at their position (a read of
// each pending acquire in the library: no round trip, nothing blocks), on
// one timer for them all, running only while one waits; it keeps no
// process alive.
const POSITION_POLL_MS = 100;
const positionWatchers = new Set();
let positionTimer = null;

function watchPosition(look) {
  positionWatchers.add(look);
  if (positionTimer === null) {
    positionTimer = setInterval(() => {
      for (const w of [...positionWatchers]) w();
    }, POSITION_POLL_MS);
    positionTimer.unref();
  }
}

function unwatchPosition(look) {
  positionWatchers.delete(look);
  if (positionWatchers.size === 0 && positionTimer !== null) {
    clearInterval(positionTimer);
    positionTimer = null;
  }
}

// The options every acquire takes, as the C functions take them.
function waitOptions(options, extra = []) {
  const o = checkOptions(options, [...WAIT_OPTIONS, ...extra]);
  const label = o.label === undefined ? '' : checkName(o.label, 'the label', 0, MAX_LABEL_BYTES, false);
  const expireMs = o.expire === undefined ? 0 : millis(o.expire, 'expire', { min: 100, max: MAX_U32 });
  const patienceMs = o.patience === undefined ? 0 : Math.max(10, millis(o.patience, 'patience', { max: MAX_U32 }));
  let timeoutMs = -1;
  if (o.timeout !== undefined && o.timeout !== null && o.timeout !== Infinity) {
    timeoutMs = millis(o.timeout, 'timeout');
  }
  const signal = o.signal;
  if (signal !== undefined && !(signal && typeof signal.aborted === 'boolean' && signal.addEventListener)) {
    throw invalid('signal must be an AbortSignal');
  }
  const onPosition = o.onPosition;
  if (onPosition !== undefined && typeof onPosition !== 'function') {
    throw invalid('onPosition must be a function');
  }
  return { options: o, label, expireMs, patienceMs, timeoutMs, signal, onPosition };
}

function positiveInteger(value, what, max) {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw invalid(`${what} must be an integer from 1 to ${max}, not ${String(value)}`);
  }
  return value;
}

/** One held lock (or a semaphore's permits, or a read-write lock's side). */
class Lock {
  constructor(locker, handle, resource, label) {
    this._locker = locker;
    this._handle = handle;
    this._released = false;
    this._lost = null;
    this._lostFd = -1;
    this.resource = resource;
    this.label = label;
    /** The ticket number (turn 1.0's serial): starts over with a new queue. */
    this.serial = BigInt(fn.turn_lock_serial(handle));
    const token = [0];
    const rc = fn.turn_lock_token(handle, token);
    if (rc !== OK) throw failure(rc, fn.turn_last_error());
    /** The fencing token: greater than every earlier grant's on this resource. */
    this.token = BigInt(token[0]);
  }

  /**
   * A Promise that resolves once the lock is known lost (its presence key
   * gone, the indicator moved on, its lease lapsed, its locker closed).
   * It never resolves for a lock released normally.
   */
  get lost() {
    if (this._lost) return this._lost;
    this._lost = new Promise((resolve) => {
      if (this._released) return;
      const fd = fn.turn_lock_lost_fd(this._handle);
      if (fd < 0) {
        if (fn.turn_lock_check(this._handle) !== OK) resolve();
        return;
      }
      this._lostFd = fd;
      poller.add(fd, () => {
        poller.remove(fd);
        this._lostFd = -1;
        resolve();
      });
    });
    return this._lost;
  }

  /** Throws a TurnError LOST once the lock is lost (no round trip). */
  check() {
    if (this._released) throw invalid('the lock was released');
    const rc = fn.turn_lock_check(this._handle);
    if (rc !== OK) throw failure(rc, fn.turn_last_error());
  }

  /**
   * Gives the turn to the next ticket. Rejects with a TurnError LOST when
   * the lock had been lost; the lock is given up in every case.
   */
  async release() {
    if (this._released) throw invalid('the lock was released already');
    this._released = true;
    this._locker._locks.delete(this);
    if (this._lostFd >= 0) {
      // The release closes the descriptor: out of the poll first.
      const fd = this._lostFd;
      this._lostFd = -1;
      await poller.remove(fd);
    }
    const r = await call('release', this._handle);
    if (r.rc !== OK) throw failure(r.rc, r.message);
  }
}

if (Symbol.asyncDispose) {
  // `await using lock = await locker.lock(...)`: released at the block's end.
  Lock.prototype[Symbol.asyncDispose] = function dispose() {
    return this._released ? Promise.resolve() : this.release();
  };
}

const LOCKER_OPTIONS = [
  'prefix',
  'connectTimeout',
  'commandTimeout',
  'poolSize',
  'grace',
  'clockSerials',
  'tls',
  'minReplicas',
];

// Locker options as lib/calls.js's lockerNew takes them.
function lockerOptions(options) {
  const o = checkOptions(options, LOCKER_OPTIONS);
  const out = {};
  if (o.prefix !== undefined) out.prefix = checkName(o.prefix, 'prefix', 1, 256, true);
  if (o.connectTimeout !== undefined) {
    out.connectTimeoutMs = millis(o.connectTimeout, 'connectTimeout', { min: 1, max: 86400000 });
  }
  if (o.commandTimeout !== undefined) {
    out.commandTimeoutMs = millis(o.commandTimeout, 'commandTimeout', { min: 1, max: 86400000 });
  }
  if (o.poolSize !== undefined) out.poolSize = positiveInteger(o.poolSize, 'poolSize', 1024);
  if (o.grace !== undefined) out.graceMs = millis(o.grace, 'grace', { max: MAX_U32 });
  if (o.clockSerials !== undefined) out.clockSerials = Boolean(o.clockSerials);
  if (o.tls !== undefined) {
    const t = checkOptions(o.tls, ['ca', 'cert', 'key']);
    out.tls = ['ca', 'cert', 'key'].map((k) =>
      t[k] === undefined || t[k] === null ? null : checkName(t[k], `tls.${k}`, 1, 4096, false),
    );
  }
  if (o.minReplicas !== undefined) {
    const m = checkOptions(o.minReplicas, ['replicas', 'timeout']);
    if (!Number.isInteger(m.replicas) || m.replicas < 0 || m.replicas > MAX_U32) {
      throw invalid('minReplicas.replicas must be an integer >= 0');
    }
    out.minReplicas = [m.replicas, m.timeout === undefined ? 1000 : millis(m.timeout, 'minReplicas.timeout', { max: MAX_U32 })];
  }
  return out;
}

/**
 * A connection to Redis with its background threads, shared by every lock
 * taken through it. Connects at its first use.
 */
class Locker {
  /**
   * @param url `redis://[user:password@]host:port/db` and the other
   *   schemes of the C API; undefined or null for redis://127.0.0.1:6379/0.
   */
  constructor(url, options) {
    if (url !== undefined && url !== null) checkName(url, 'the URL', 1, 65536, true);
    this._url = url === undefined ? null : url;
    this._options = lockerOptions(options);
    this._handle = null;
    this._connecting = null;
    this._closing = null;
    this._locks = new Set();
  }

  // The C locker, connected at the first call.
  _locker() {
    if (this._closing) return Promise.reject(closedError());
    if (!this._connecting) {
      this._connecting = call('lockerNew', this._url, this._options).then((r) => {
        if (r.rc !== OK) {
          this._connecting = null; // the next call tries again
          throw failure(r.rc, r.message);
        }
        this._handle = r.value;
        return r.value;
      });
    }
    return this._connecting;
  }

  /** Connects now rather than at the first lock; resolves to the locker. */
  async connect() {
    await this._locker();
    return this;
  }

  // A call of the caller thread that names this locker.
  async _call(name, ...args) {
    const locker = await this._locker();
    const r = await call(name, locker, ...args);
    if (r.rc !== OK) throw this._closing ? closedError() : failure(r.rc, r.message);
    return r.value;
  }

  /**
   * Takes a ticket for `resource` and resolves to the Lock when its turn
   * comes. Options (seconds): label, expire (the lease, default 10),
   * patience (default 60), timeout (default: forever; 0 tries once),
   * signal (an AbortSignal: aborting withdraws the ticket).
   */
  lock(resource, options) {
    return this._acquire('lock', resource, options, [], (w) => [w.expireMs, w.patienceMs]);
  }

  /**
   * Takes `weight` (default 1) of the `permits` of the FIFO semaphore
   * `resource`; the other options as lock()'s.
   */
  semaphore(resource, options) {
    return this._acquire('semaphore', resource, options, ['permits', 'weight'], (w) => {
      const permits = positiveInteger(w.options.permits, 'permits', MAX_U32);
      const weight = w.options.weight === undefined ? 1 : positiveInteger(w.options.weight, 'weight', permits);
      return [permits, weight, w.expireMs, w.patienceMs];
    });
  }

  /**
   * Takes the read-write lock `resource`: alone when `exclusive` (a
   * writer), beside other readers when not (the default); the other
   * options as lock()'s.
   */
  rwlock(resource, options) {
    return this._acquire('rwlock', resource, options, ['exclusive'], (w) => [
      w.options.exclusive ? 1 : 0,
      w.expireMs,
      w.patienceMs,
    ]);
  }

  async _acquire(kind, resource, options, extra, argsOf) {
    const w = waitOptions(options, extra);
    checkResource(resource);
    const args = [...argsOf(w), w.timeoutMs];
    if (w.signal && w.signal.aborted) throw w.signal.reason;
    const locker = await this._locker();
    if (w.signal && w.signal.aborted) throw w.signal.reason;
    if (w.timeoutMs === 0) {
      const r = await call('tryOnce', kind, locker, resource, w.label, args);
      if (r.rc !== OK) throw this._closing ? closedError() : failure(r.rc, r.message);
      const lock = this._held(r.value, resource, w.label);
      if (w.signal && w.signal.aborted) {
        // Aborted during the try: the lock is not wanted any more.
        await lock.release().catch(() => {});
        throw w.signal.reason;
      }
      return lock;
    }
    const r = await call('start', kind, locker, resource, w.label, args);
    if (r.rc !== OK) throw this._closing ? closedError() : failure(r.rc, r.message);
    return this._wait(r.value, w.signal, resource, w.label, w.onPosition);
  }

  _held(handle, resource, label) {
    const lock = new Lock(this, handle, resource, label);
    this._locks.add(lock);
    return lock;
  }

  // Watches a pending acquire until its outcome, or withdraws it when the
  // signal aborts; tells onPosition (if any) the tickets ahead as they
  // change.
  _wait(pending, signal, resource, label, onPosition) {
    return new Promise((resolve, reject) => {
      let done = false;
      let look = null;
      const fd = fn.turn_pending_fd(pending);
      const end = () => {
        done = true;
        if (look !== null) unwatchPosition(look);
        if (signal) signal.removeEventListener('abort', onAbort);
      };
      const withdraw = async (reason) => {
        if (done) return; // withdrawn already (an abort, then a throw)
        end();
        try {
          await poller.remove(fd); // the withdrawal closes the descriptor
          await call('cancel', pending);
        } finally {
          reject(reason);
        }
      };
      const onAbort = () => {
        if (!done) withdraw(signal.reason);
      };
      if (signal) {
        if (signal.aborted) return void withdraw(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      }
      if (fd < 0) return void withdraw(failure(INVALID_ARGUMENT, fn.turn_last_error()));
      if (onPosition) {
        let told = null;
        look = () => {
          if (done) return;
          const ahead = [0];
          if (fn.turn_pending_position(pending, ahead) !== OK) return;
          const n = Number(ahead[0]);
          if (n === 0 || n === told) return;
          told = n;
          try {
            const r = onPosition(n, resource);
            // An async onPosition that rejects: as a throw.
            if (r && typeof r.then === 'function') r.then(undefined, (e) => withdraw(e));
          } catch (e) {
            // As an abort: the ticket is withdrawn, the promise rejects.
            withdraw(e);
          }
        };
        watchPosition(look);
        setImmediate(look); // once the fd is watched (a throw withdraws)
      }
      poller.add(fd, () => {
        if (done) return;
        const out = [null];
        const rc = fn.turn_pending_finish(pending, out);
        if (rc === WOULD_BLOCK) return; // not yet: keep watching
        const message = rc === OK ? '' : fn.turn_last_error();
        end();
        poller.remove(fd); // no poll has it now: it is closed already
        if (rc !== OK) return void reject(failure(rc, message));
        try {
          resolve(this._held(out[0], resource, label));
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  /**
   * Takes plain locks on every resource of `resources` (1 to 64 distinct
   * names), or none; resolves to the locks in the order given. The locks
   * are taken one after another in the order the C library's
   * turn_lock_acquire_all uses (the names' UTF-8 bytes, ascending), so
   * that callers of either never wait for each other in a circle; each
   * waits as lock() does, without a thread. `timeout` bounds the whole
   * call; on a timeout, an abort or an error the locks taken are released.
   */
  async lockAll(resources, options) {
    const w = waitOptions(options);
    if (!Array.isArray(resources) || resources.length < 1 || resources.length > MAX_ALL_RESOURCES) {
      throw invalid(`resources must be an array of 1 to ${MAX_ALL_RESOURCES} names`);
    }
    resources.forEach(checkResource);
    if (new Set(resources).size !== resources.length) throw invalid('a resource is named twice');
    const order = [...resources].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const deadline = w.timeoutMs > 0 ? Date.now() + w.timeoutMs : null;
    const taken = new Map();
    try {
      for (const resource of order) {
        let timeout = w.timeoutMs < 0 ? undefined : 0;
        if (deadline !== null) {
          const left = deadline - Date.now();
          if (left <= 0) throw new TurnError('TIMEOUT', 'TIMEOUT: not every lock was had in time', TIMEOUT);
          timeout = left / 1000;
        }
        const opts = { label: w.label, timeout, signal: w.signal, onPosition: w.onPosition };
        if (w.expireMs) opts.expire = w.expireMs / 1000;
        if (w.patienceMs) opts.patience = w.patienceMs / 1000;
        taken.set(resource, await this.lock(resource, opts));
      }
    } catch (e) {
      await Promise.allSettled([...taken.values()].map((l) => l.release()));
      throw e;
    }
    return resources.map((r) => taken.get(r));
  }

  /**
   * A snapshot of the queue of `resource`: { resource, kind ('plain',
   * 'semaphore' or 'rwlock'), permits (a semaphore's), indicator,
   * dispenser, tickets } (serials and tokens as BigInt), the tickets
   * ascending, holders first, each { serial, label, held, ours (false: a
   * turn 1.0 client's), token (null when not known), heldFor or waitedFor
   * (seconds; null for the other state or when not known), leaseLeft
   * (seconds; null: no expiry), position (a waiter's place from 1; null
   * for a holder), weight, exclusive }. Rejects with NOT_FOUND when there
   * is no queue.
   */
  async status(resource) {
    checkResource(resource);
    const s = await this._call('status', resource);
    return { resource, ...s };
  }

  /** Moves the indicator past dead tickets; resolves to the indicator. */
  async bump(resource) {
    checkResource(resource);
    return this._call('bump', resource);
  }

  /** Removes the queue of `resource` when nobody is in it (else BUSY). */
  async reset(resource) {
    checkResource(resource);
    await this._call('reset', resource);
  }

  /**
   * Resolves to what this locker counted of its own work, in the
   * Prometheus text format 0.0.4 (acquires, failures by reason, locks
   * lost, hand-offs, beats, broken connections, the wait and hold
   * histograms; every name turn_..., no label naming a resource). No
   * round trip once connected.
   */
  async metrics() {
    const locker = await this._locker();
    const needed = [0];
    let rc = fn.turn_locker_metrics(locker, null, 0, needed);
    for (;;) {
      if (rc !== OK) throw failure(rc, fn.turn_last_error());
      const size = Number(needed[0]) + 64; // room for a counter that grows meanwhile
      const buf = Buffer.alloc(size);
      rc = fn.turn_locker_metrics(locker, buf, size, needed);
      if (rc === OK) return buf.toString('utf8', 0, Number(needed[0]) - 1);
      if (Number(needed[0]) <= size) throw failure(rc, fn.turn_last_error());
      rc = OK;
    }
  }

  /**
   * Throws a TurnError while a background thread of the locker failed
   * (PANIC) or its heartbeat is slow (CONNECTION); no round trip.
   */
  health() {
    if (this._closing) throw closedError();
    if (this._handle === null) return;
    const rc = fn.turn_locker_health(this._handle);
    if (rc !== OK) throw failure(rc, fn.turn_last_error());
  }

  /**
   * Stops the locker: waits in progress end with CANCELED (their tickets
   * withdrawn), locks still held are released (their release() then
   * rejects with LOST and their `lost` resolves). Later calls reject with
   * a TurnError CLOSED.
   */
  close() {
    if (!this._closing) {
      const connecting = this._connecting;
      this._closing = (async () => {
        let handle = null;
        if (connecting) handle = await connecting.catch(() => null);
        if (handle !== null) await call('lockerFree', handle);
      })();
    }
    return this._closing;
  }
}

if (Symbol.asyncDispose) {
  // `await using locker = new Locker(url)`: closed at the block's end.
  Locker.prototype[Symbol.asyncDispose] = function dispose() {
    return this.close();
  };
}

/** The library's version, such as "0.1.0". */
function version() {
  return fn.turn_version();
}

module.exports = { Locker, Lock, TurnError, version };
