'use strict';
// One thread of the process makes the calls that wait on a round trip to
// Redis (a draw, a release, a withdrawal, a status read, connecting), so
// that the event loop never waits on Redis. It is a worker thread rather
// than a thread pool's async call because the detail of a failure
// (turn_last_error) belongs to the thread that made the call: the caller
// thread reads it right after. Calls run one at a time, in the order they
// were asked; the thread starts at the first call and does not keep the
// process alive while no call is in progress.

const path = require('node:path');
const { Worker } = require('node:worker_threads');

let worker = null;
let nextId = 1;
const waiting = new Map();

function failAll(error) {
  for (const { reject } of waiting.values()) reject(error);
  waiting.clear();
}

function thread() {
  if (worker) return worker;
  worker = new Worker(path.join(__dirname, 'caller-thread.js'), {
    env: process.env,
    stdout: false,
    stderr: false,
  });
  worker.on('message', (reply) => {
    const w = waiting.get(reply.id);
    if (!w) return;
    waiting.delete(reply.id);
    if (waiting.size === 0 && worker) worker.unref();
    w.resolve(reply);
  });
  const gone = (error) => {
    worker = null;
    failAll(error instanceof Error ? error : new Error(`the caller thread stopped (${error})`));
  };
  worker.on('error', gone);
  worker.on('exit', gone);
  worker.unref();
  return worker;
}

// Runs calls[name](...args) on the caller thread; resolves with its
// { rc, message, value }.
function call(name, ...args) {
  const w = thread();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    if (waiting.size === 1) w.ref();
    w.postMessage({ id, name, args });
  });
}

module.exports = { call };
