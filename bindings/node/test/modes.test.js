'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { needsRedis, locker, eventually, queued } = require('./support');

test('a semaphore admits holders while their weights fit its permits, in draw order', needsRedis, async (t) => {
  const l = locker(t);
  const a = await l.semaphore('encoder', { permits: 3, weight: 2, label: 'a' });
  const b = l.semaphore('encoder', { permits: 3, weight: 2, label: 'b' });
  const c = l.semaphore('encoder', { permits: 3, label: 'c' }); // fits, but b is ahead of it
  await eventually(async () => (await queued(l, 'encoder')) === 3);
  const order = [];
  b.then(() => order.push('b'));
  c.then(() => order.push('c'));
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(order, [], 'c does not barge past b');
  await a.release();
  const [lb, lc] = await Promise.all([b, c]); // 2 + 1 permits: both hold at once
  assert.deepEqual(order, ['b', 'c']);
  assert.ok(lc.token > lb.token);
  await assert.rejects(l.semaphore('encoder', { permits: 4, timeout: 1 }), (e) => e.code === 'WRONG_KIND');
  await assert.rejects(l.semaphore('encoder', { permits: 3, timeout: 0 }), (e) => e.code === 'WOULD_BLOCK');
  await lb.release();
  await lc.release();
});

test('a read-write lock lets readers share and a writer hold alone', needsRedis, async (t) => {
  const l = locker(t);
  const r1 = await l.rwlock('table', { label: 'reader 1' });
  const r2 = await l.rwlock('table', { label: 'reader 2', timeout: 5 });
  const writer = l.rwlock('table', { exclusive: true, label: 'writer' });
  await eventually(async () => (await queued(l, 'table')) === 3);
  // A reader drawn after the writer waits for it.
  const late = await l.rwlock('table', { timeout: 0 }).catch((e) => e);
  assert.equal(late.code, 'WOULD_BLOCK');
  await r1.release();
  await r2.release();
  const w = await writer;
  assert.equal((await l.status('table')).tickets.length, 1);
  await assert.rejects(l.lock('table', { timeout: 1 }), (e) => e.code === 'WRONG_KIND');
  await w.release();
});

test('lockAll takes every lock or none, and gives them in the order asked', needsRedis, async (t) => {
  const l = locker(t);
  const locks = await l.lockAll(['account:42', 'account:7'], { label: 'transfer', timeout: 5 });
  assert.deepEqual(locks.map((x) => x.resource), ['account:42', 'account:7']);
  assert.ok(locks.every((x) => x.label === 'transfer'));
  const busy = locks[1];
  await locks[0].release();
  // account:7 is held: a lockAll naming it times out and keeps nothing.
  const e = await l.lockAll(['account:1', 'account:7', 'account:9'], { timeout: 0.3 }).catch((e) => e);
  assert.equal(e.code, 'TIMEOUT');
  await eventually(async () => (await queued(l, 'account:7')) === 1);
  for (const r of ['account:1', 'account:9', 'account:42']) assert.equal(await queued(l, r), 0, r);
  await busy.release();
  const again = await l.lockAll(['account:9', 'account:1'], { timeout: 0 });
  assert.deepEqual(again.map((x) => x.resource), ['account:9', 'account:1']);
  await Promise.all(again.map((x) => x.release()));
});

test('status of a resource without a queue rejects with NOT_FOUND', needsRedis, async (t) => {
  const l = locker(t);
  await assert.rejects(l.status('nothing here'), (e) => e.code === 'NOT_FOUND');
});
