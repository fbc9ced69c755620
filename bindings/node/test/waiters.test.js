'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { needsRedis, locker, eventually, queued, threads } = require('./support');

// n waiters behind a holder; resolves to the process's thread count while
// they all wait, once each has been served, in turn, in ticket order.
async function serve(l, resource, n) {
  const holder = await l.lock(resource);
  let inside = 0;
  const served = [];
  const waits = [];
  for (let i = 0; i < n; i++) {
    waits.push(
      l.lock(resource, { label: `waiter ${i}` }).then(async (lock) => {
        inside++;
        assert.equal(inside, 1, 'two holders at once');
        served.push(lock.serial);
        inside--;
        await lock.release();
      }),
    );
  }
  await eventually(async () => (await queued(l, resource)) === n + 1, 120);
  const count = threads();
  await holder.release();
  await Promise.all(waits);
  assert.equal(served.length, n);
  const sorted = [...served].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  assert.deepEqual(served, sorted, 'served in ticket order');
  assert.equal(await queued(l, resource), 0);
  return count;
}

test('1,000 waiting acquires take no thread each and are served in FIFO order', { ...needsRedis, timeout: 300000 }, async (t) => {
  const l = locker(t);
  const at10 = await serve(l, 'fifo', 10);
  const at1000 = await serve(l, 'fifo', 1000);
  const line = `threads of the process: ${at10} with 10 waiters, ${at1000} with 1000 waiters`;
  t.diagnostic(line);
  console.log(line);
  assert.ok(at1000 - at10 <= 2, line);
});

test('200 waiters, half aborted (some as their turn comes): no ticket is left, the rest are served in order', { ...needsRedis, timeout: 120000 }, async (t) => {
  const l = locker(t);
  const holder = await l.lock('abort');
  const n = 200;
  const controllers = [];
  const served = [];
  const aborted = [];
  const waits = [];
  for (let i = 0; i < n; i++) {
    const ac = new AbortController();
    controllers.push(ac);
    waits.push(
      l.lock('abort', { signal: ac.signal }).then(
        async (lock) => {
          served.push(lock.serial);
          // The next waiter still wanted is aborted as the turn reaches it.
          if (i % 4 === 1 && i + 2 < n) controllers[i + 2].abort(new Error(`abort ${i + 2}`));
          await lock.release();
        },
        (e) => {
          assert.equal(e.message, `abort ${i}`);
          aborted.push(i);
        },
      ),
    );
  }
  await eventually(async () => (await queued(l, 'abort')) === n + 1, 60);
  for (let i = 0; i < n; i += 2) controllers[i].abort(new Error(`abort ${i}`));
  await holder.release();
  await Promise.all(waits);
  assert.equal(served.length + aborted.length, n);
  assert.ok(aborted.length >= n / 2, `${aborted.length} aborted`);
  const sorted = [...served].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  assert.deepEqual(served, sorted, 'served in ticket order');
  await eventually(async () => (await queued(l, 'abort')) === 0);
  const next = await l.lock('abort', { timeout: 5 });
  await next.release();
});
