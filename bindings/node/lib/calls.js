'use strict';
// The calls that make a round trip to Redis. They run on the caller thread
// (lib/caller.js), one at a time, each followed on the same thread by
// turn_last_error (a thread's own) when it failed. Each answers
// { rc, message, value }.

const { fn } = require('./ffi');

const KINDS = { 0: 'plain', 1: 'semaphore', 2: 'rwlock' };

function out() {
  return [null];
}

function answer(rc, value) {
  return rc === 0 ? { rc, value } : { rc, message: fn.turn_last_error() || '' };
}

const calls = {
  // opts: { prefix, connectTimeoutMs, commandTimeoutMs, poolSize, graceMs,
  // clockSerials, tls: [ca, cert, key], minReplicas: [n, timeoutMs] }
  lockerNew(url, opts) {
    const o = out();
    let rc = fn.turn_options_new(o);
    if (rc !== 0) return answer(rc);
    const options = o[0];
    try {
      const steps = [];
      if (opts.prefix !== undefined) steps.push(() => fn.turn_options_set_prefix(options, opts.prefix));
      if (opts.connectTimeoutMs !== undefined)
        steps.push(() => fn.turn_options_set_connect_timeout_ms(options, opts.connectTimeoutMs));
      if (opts.commandTimeoutMs !== undefined)
        steps.push(() => fn.turn_options_set_command_timeout_ms(options, opts.commandTimeoutMs));
      if (opts.poolSize !== undefined) steps.push(() => fn.turn_options_set_pool_size(options, opts.poolSize));
      if (opts.graceMs !== undefined) steps.push(() => fn.turn_options_set_grace_ms(options, opts.graceMs));
      if (opts.clockSerials !== undefined)
        steps.push(() => fn.turn_options_set_clock_serials(options, opts.clockSerials ? 1 : 0));
      if (opts.tls !== undefined) steps.push(() => fn.turn_options_set_tls(options, ...opts.tls));
      if (opts.minReplicas !== undefined)
        steps.push(() => fn.turn_options_set_min_replicas(options, ...opts.minReplicas));
      for (const step of steps) {
        rc = step();
        if (rc !== 0) return answer(rc);
      }
      const l = out();
      rc = fn.turn_locker_new_with_options(url, options, l);
      return answer(rc, l[0]);
    } finally {
      fn.turn_options_free(options);
    }
  },

  lockerFree(locker) {
    fn.turn_locker_free(locker);
    return { rc: 0 };
  },

  // kind: 'lock' | 'semaphore' | 'rwlock'; args after the label as the C
  // function takes them, the timeout last. Answers the pending.
  start(kind, locker, resource, label, args) {
    const o = out();
    const f = { lock: fn.turn_acquire_start, semaphore: fn.turn_semaphore_start, rwlock: fn.turn_rwlock_start }[kind];
    const rc = f(locker, resource, label, ...args, o);
    return answer(rc, o[0]);
  },

  // The same with a timeout of 0: one try. Answers the lock.
  tryOnce(kind, locker, resource, label, args) {
    const o = out();
    const f = { lock: fn.turn_lock_acquire, semaphore: fn.turn_semaphore_acquire, rwlock: fn.turn_rwlock_acquire }[kind];
    const rc = f(locker, resource, label, ...args, o);
    return answer(rc, o[0]);
  },

  cancel(pending) {
    return answer(fn.turn_pending_cancel(pending));
  },

  release(lock) {
    return answer(fn.turn_lock_release(lock));
  },

  status(locker, resource) {
    const o = out();
    const rc = fn.turn_status_get(locker, resource, o);
    if (rc !== 0) return answer(rc);
    const s = o[0];
    try {
      const tickets = [];
      const n = Number(fn.turn_status_len(s));
      for (let i = 0; i < n; i++) {
        const held = fn.turn_status_held_at(s, i) === 1;
        const age = Number(fn.turn_status_age_ms_at(s, i));
        const lease = Number(fn.turn_status_lease_left_ms_at(s, i));
        const token = BigInt(fn.turn_status_token_at(s, i));
        const position = Number(fn.turn_status_position_at(s, i));
        tickets.push({
          serial: BigInt(fn.turn_status_serial_at(s, i)),
          label: fn.turn_status_label_at(s, i),
          held,
          ours: fn.turn_status_ours_at(s, i) === 1,
          token: token === 0n ? null : token,
          heldFor: held && age >= 0 ? age / 1000 : null,
          waitedFor: !held && age >= 0 ? age / 1000 : null,
          leaseLeft: lease >= 0 ? lease / 1000 : null,
          position: position === 0 ? null : position,
          weight: fn.turn_status_weight_at(s, i),
          exclusive: fn.turn_status_exclusive_at(s, i) === 1,
        });
      }
      const kind = KINDS[fn.turn_status_kind(s)] || 'plain';
      const facts = {
        indicator: BigInt(fn.turn_status_indicator(s)),
        dispenser: BigInt(fn.turn_status_dispenser(s)),
        kind,
        tickets,
      };
      if (kind === 'semaphore') facts.permits = fn.turn_status_permits(s);
      return answer(0, facts);
    } finally {
      fn.turn_status_free(s);
    }
  },

  bump(locker, resource) {
    const o = [0];
    const rc = fn.turn_bump(locker, resource, o);
    return answer(rc, rc === 0 ? BigInt(o[0]) : undefined);
  },

  reset(locker, resource) {
    return answer(fn.turn_reset(locker, resource));
  },

  announce(locker, resource, line) {
    return answer(fn.turn_announce(locker, resource, line));
  },
};

module.exports = calls;
