'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const { Locker, TurnError } = require('..');
const { url, needsRedis, locker, eventually, queued } = require('./support');

test('a lock is held alone, shows in the status, and its release hands the turn on', needsRedis, async (t) => {
  const l = locker(t);
  const first = await l.lock('printer', { label: 'job', expire: 10, patience: 60, timeout: 5 });
  assert.equal(typeof first.token, 'bigint');
  assert.equal(typeof first.serial, 'bigint');
  assert.equal(first.serial, 1n);
  assert.ok(first.token > 0n);
  const s = await l.status('printer');
  assert.deepEqual(
    s.tickets.map(({ serial, label }) => ({ serial, label })),
    [{ serial: 1n, label: 'job' }],
  );
  assert.equal(s.indicator, 1n);
  const second = l.lock('printer', { label: 'next' });
  await eventually(async () => (await queued(l, 'printer')) === 2);
  first.check();
  await first.release();
  const next = await second;
  assert.equal(next.serial, 2n);
  assert.ok(next.token > first.token, 'the token went forward');
  await next.release();
  assert.equal(await queued(l, 'printer'), 0);
});

test('a timeout rejects with TIMEOUT and withdraws the ticket', needsRedis, async (t) => {
  const l = locker(t);
  const holder = await l.lock('printer');
  const e = await l.lock('printer', { timeout: 0.2 }).catch((e) => e);
  assert.ok(e instanceof TurnError, String(e));
  assert.equal(e.code, 'TIMEOUT');
  assert.match(e.message, /^TIMEOUT: .+/, 'the library says more than the code');
  // The notifier withdraws the ticket right after the deadline.
  await eventually(async () => (await queued(l, 'printer')) === 1);
  assert.deepEqual((await l.status('printer')).tickets.map((x) => x.serial), [holder.serial]);
  await holder.release();
});

test('timeout 0 tries once: WOULD_BLOCK when the turn is taken', needsRedis, async (t) => {
  const l = locker(t);
  const holder = await l.lock('printer', { timeout: 0 });
  const e = await l.lock('printer', { timeout: 0 }).catch((e) => e);
  assert.equal(e.code, 'WOULD_BLOCK');
  assert.equal(await queued(l, 'printer'), 1);
  await holder.release();
});

test('an aborted signal rejects with its reason and withdraws the ticket', needsRedis, async (t) => {
  const l = locker(t);
  const holder = await l.lock('printer');
  const ac = new AbortController();
  const waiting = l.lock('printer', { signal: ac.signal });
  await eventually(async () => (await queued(l, 'printer')) === 2);
  const reason = new Error('no longer wanted');
  ac.abort(reason);
  await assert.rejects(waiting, (e) => e === reason);
  assert.equal(await queued(l, 'printer'), 1, 'the ticket was withdrawn');
  // A signal aborted already draws no ticket at all.
  const before = (await l.status('printer')).dispenser;
  await assert.rejects(l.lock('printer', { signal: AbortSignal.abort('gone') }), (e) => e === 'gone');
  assert.equal((await l.status('printer')).dispenser, before);
  await holder.release();
  // The next ticket is granted at once: nobody stalls behind the withdrawn one.
  const next = await l.lock('printer', { timeout: 5 });
  await next.release();
});

test('onPosition hears a waiting acquire move up, and a throw from it withdraws the ticket', needsRedis, async (t) => {
  const l = locker(t);
  const holder = await l.lock('printer', { label: 'first' });
  const heard = [];
  const middle = l.lock('printer', { label: 'middle' });
  await eventually(async () => (await queued(l, 'printer')) === 2);
  const last = l.lock('printer', { label: 'last', onPosition: (ahead) => heard.push(ahead) });
  await eventually(async () => heard.length > 0);
  assert.deepEqual(heard, [2], 'the holder and one waiter ahead');
  await holder.release();
  const m = await middle;
  await eventually(async () => heard.at(-1) === 1);
  await m.release();
  const lock = await last;
  assert.deepEqual(heard, [2, 1], 'each change once, none after the grant');
  await lock.release();
  const atOnce = await l.lock('printer', { onPosition: () => heard.push('at once') });
  await atOnce.release();
  assert.equal(heard.length, 2, 'never called for a lock had at once');
  // A throw withdraws the ticket and rejects with what was thrown.
  const again = await l.lock('printer');
  const boom = new Error('enough waiting');
  const e = await l.lock('printer', { onPosition: () => { throw boom; } }).catch((e) => e);
  assert.equal(e, boom);
  await eventually(async () => (await queued(l, 'printer')) === 1);
  await again.release();
});

test('onPosition: an abort then a throw withdraws once; a rejected promise withdraws; lockAll names each resource', needsRedis, async (t) => {
  const l = locker(t);
  const holder = await l.lock('printer');
  const ac = new AbortController();
  const reason = new Error('aborted first');
  const e = await l
    .lock('printer', {
      signal: ac.signal,
      onPosition: () => {
        ac.abort(reason);
        throw new Error('thrown after');
      },
    })
    .catch((e) => e);
  assert.equal(e, reason, 'the abort came first');
  await eventually(async () => (await queued(l, 'printer')) === 1);
  const nope = new Error('async no');
  const e2 = await l.lock('printer', { onPosition: async () => { throw nope; } }).catch((e) => e);
  assert.equal(e2, nope);
  await eventually(async () => (await queued(l, 'printer')) === 1);
  await holder.release();
  // Fresh queues (withdrawn tickets count until the queue passes them).
  const [ink, paper] = [await l.lock('ink'), await l.lock('paper')];
  const heard = [];
  const both = l.lockAll(['ink', 'paper'], { onPosition: (ahead, resource) => heard.push([resource, ahead]) });
  await eventually(async () => heard.length === 1);
  await ink.release();
  await eventually(async () => heard.length === 2);
  await paper.release();
  for (const lock of await both) await lock.release();
  assert.deepEqual(heard, [['ink', 1], ['paper', 1]]);
});

test('a process that ends while a wait is in progress exits at once: process.exit, an uncaught exception', needsRedis, async (t) => {
  const l = locker(t, { prefix: `node-exit-${process.pid}` });
  const holder = await l.lock('printer');
  const waiter = (end) => `
    const { Locker } = require(${JSON.stringify(require.resolve('..'))});
    const l = new Locker(${JSON.stringify(url)}, { prefix: 'node-exit-${process.pid}' });
    l.lock('printer', { onPosition: () => setTimeout(() => { ${end} }, 50) }).catch(() => {});
  `;
  for (const [end, status] of [['process.exit(3)', 3], ["throw new Error('uncaught')", 1]]) {
    // A hang would be killed by the timeout (a signal, no status).
    const r = spawnSync(process.execPath, ['-e', waiter(end)], { timeout: 60000, encoding: 'utf8' });
    assert.equal(r.signal, null, `${end}: it hung (${r.stderr})`);
    assert.equal(r.status, status, `${end}: ${r.stderr}`);
  }
  await holder.release();
});

test('bad arguments reject with INVALID_ARGUMENT before any round trip', async () => {
  // Nothing listens on port 1: a round trip would fail with CONNECTION.
  const l = new Locker('redis://127.0.0.1:1/0');
  const bad = [
    () => l.lock(''),
    () => l.lock('x'.repeat(1025)),
    () => l.lock('tab\there'),
    () => l.lock(42),
    () => l.lock('r', { expire: 0.05 }),
    () => l.lock('r', { timeout: -1 }),
    () => l.lock('r', { patience: 'long' }),
    () => l.lock('r', { label: 'x'.repeat(4097) }),
    () => l.lock('r', { signal: {} }),
    () => l.lock('r', { colour: 'red' }),
    () => l.lock('r', { onPosition: 3 }),
    () => l.semaphore('r', { permits: 0 }),
    () => l.semaphore('r', { permits: 2, weight: 3 }),
    () => l.lockAll([]),
    () => l.lockAll(['a', 'a']),
    () => l.status(''),
  ];
  for (const f of bad) {
    await assert.rejects(f(), (e) => e instanceof TurnError && e.code === 'INVALID_ARGUMENT', f.toString());
  }
  assert.throws(() => new Locker(7), (e) => e.code === 'INVALID_ARGUMENT');
  assert.throws(() => new Locker(url, { poolSize: 0 }), (e) => e.code === 'INVALID_ARGUMENT');
  // The round trip itself fails as a connection does.
  await assert.rejects(l.lock('r'), (e) => e.code === 'CONNECTION' && e.message.length > 'CONNECTION: '.length);
  await l.close();
});

test('a URL the library refuses rejects with its detail', async () => {
  const l = new Locker('http://127.0.0.1:6379/0');
  await assert.rejects(l.lock('r'), (e) => e.code === 'INVALID_ARGUMENT' && /scheme|URL/i.test(e.message));
  await l.close();
});

test('a lock on a semaphore queue rejects with WRONG_KIND', needsRedis, async (t) => {
  const l = locker(t);
  const permit = await l.semaphore('pool', { permits: 3 });
  await assert.rejects(l.lock('pool', { timeout: 1 }), (e) => e.code === 'WRONG_KIND' && e.message.length > 12);
  await permit.release();
});

test('closing the locker ends waits with CANCELED and loses held locks: lost resolves, release rejects LOST', needsRedis, async (t) => {
  const l = locker(t);
  const held = await l.lock('printer', { expire: 30 });
  const lost = held.lost;
  const waiting = l.lock('printer').catch((e) => e);
  await eventually(async () => (await queued(l, 'printer')) === 2);
  await l.close();
  await lost; // resolves
  assert.throws(() => held.check(), (e) => e.code === 'LOST');
  await assert.rejects(held.release(), (e) => e instanceof TurnError && e.code === 'LOST');
  assert.equal((await waiting).code, 'CANCELED');
  await assert.rejects(l.lock('printer'), (e) => e.code === 'CLOSED');
  await assert.rejects(held.release(), (e) => e.code === 'INVALID_ARGUMENT', 'a second release');
  const other = locker(t);
  assert.equal(await queued(other, 'printer'), 0, 'no ticket is left behind');
});

test('a lock whose presence key is deleted is lost: lost resolves, release rejects with LOST', needsRedis, async (t) => {
  const prefix = `node-gone-${process.pid}`;
  const l = locker(t, { prefix });
  const lock = await l.lock('printer', { expire: 3 });
  const lost = lock.lost;
  lock.check();
  execFileSync('redis-cli', ['-u', url, 'DEL', `${prefix}:printer:serial:${lock.serial}`]);
  await lost; // within one heartbeat (a third of the lease)
  assert.throws(() => lock.check(), (e) => e.code === 'LOST');
  await assert.rejects(lock.release(), (e) => e instanceof TurnError && e.code === 'LOST' && e.message.length > 6);
});

test('Symbol.asyncDispose releases a lock and closes a locker', { ...needsRedis, skip: needsRedis.skip || (!Symbol.asyncDispose && 'no Symbol.asyncDispose') }, async (t) => {
  const l = locker(t);
  const lock = await l.lock('printer');
  await lock[Symbol.asyncDispose]();
  assert.equal(await queued(l, 'printer'), 0);
  await lock[Symbol.asyncDispose](); // once released, nothing more
  await l[Symbol.asyncDispose]();
  await assert.rejects(l.lock('printer'), (e) => e.code === 'CLOSED');
});
