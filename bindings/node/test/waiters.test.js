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
