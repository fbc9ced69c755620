'use strict';
// What the tests share: the redis-server of this run, named by
// TURN_TEST_REDIS_URL (tests/bindings.rs starts one on a free port), and a
// locker with a key prefix of the test's own.
const { Locker } = require('..');

const url = process.env.TURN_TEST_REDIS_URL;

// test() options that skip when no server is named.
const needsRedis = url ? {} : { skip: 'TURN_TEST_REDIS_URL is not set: run these tests through make test' };

let n = 0;
function locker(t, options = {}) {
  const l = new Locker(url, { prefix: `node-${process.pid}-${++n}`, ...options });
  t.after(() => l.close());
  return l;
}

// Resolves once `f()` is true, trying every 10 ms for at most `seconds`.
async function eventually(f, seconds = 20) {
  const end = Date.now() + seconds * 1000;
  while (!(await f())) {
    if (Date.now() > end) throw new Error('the condition never came true');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// The number of live tickets in the queue of `resource`.
async function queued(l, resource) {
  try {
    return (await l.status(resource)).tickets.length;
  } catch (e) {
    if (e.code === 'NOT_FOUND') return 0;
    throw e;
  }
}

function threads() {
  const status = require('node:fs').readFileSync('/proc/self/status', 'utf8');
  return Number(/^Threads:\s+(\d+)/m.exec(status)[1]);
}

module.exports = { url, needsRedis, locker, eventually, queued, threads };
