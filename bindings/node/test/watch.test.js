'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { needsRedis, locker, eventually, queued } = require('./support');

test('metrics() gives the locker its counters in the Prometheus text format', needsRedis, async (t) => {
  const l = locker(t);
  let text = await l.metrics();
  assert.match(text, /^# HELP turn_acquires_total /m);
  assert.match(text, /^turn_acquires_total\{granted="at_once"\} 0$/m);
  const held = await l.lock('m');
  const e = await l.lock('m', { timeout: 0 }).catch((e) => e);
  assert.equal(e.code, 'WOULD_BLOCK');
  await held.release();
  text = await l.metrics();
  assert.match(text, /^turn_acquires_total\{granted="at_once"\} 1$/m);
  assert.match(text, /^turn_acquire_failures_total\{reason="would_block"\} 1$/m);
  assert.match(text, /^turn_hold_seconds_count 1$/m);
  assert.ok(text.endsWith('\n') && !text.includes('\0'));
});

test('status() tells holders and waiters apart with their facts', needsRedis, async (t) => {
  const l = locker(t);
  const held = await l.lock('printer', { label: 'holder', expire: 8 });
  const waiting = l.lock('printer', { label: 'waiter' });
  await eventually(async () => (await queued(l, 'printer')) === 2);
  await new Promise((r) => setTimeout(r, 200));
  const s = await l.status('printer');
  assert.equal(s.kind, 'plain');
  assert.equal(s.permits, undefined);
  const [h, w] = s.tickets;
  assert.equal(h.held, true);
  assert.equal(h.ours, true);
  assert.equal(h.token, held.token);
  assert.equal(h.position, null);
  assert.equal(h.waitedFor, null);
  assert.ok(h.heldFor >= 0.2, String(h.heldFor));
  assert.ok(h.leaseLeft > 0 && h.leaseLeft <= 8, String(h.leaseLeft));
  assert.equal(h.exclusive, true);
  assert.equal(h.weight, 1);
  assert.equal(w.held, false);
  assert.equal(w.position, 1);
  assert.equal(w.heldFor, null);
  assert.ok(w.waitedFor >= 0.2, String(w.waitedFor));
  assert.ok(w.token > held.token);
  await held.release();
  await (await waiting).release();

  const sem = await l.semaphore('pool', { permits: 3, weight: 2 });
  const p = await l.status('pool');
  assert.equal(p.kind, 'semaphore');
  assert.equal(p.permits, 3);
  assert.equal(p.tickets[0].weight, 2);
  assert.equal(p.tickets[0].exclusive, false);
  await sem.release();
});
