'use strict';
// The caller thread's body: runs lib/calls.js's calls as the main thread
// asks, one at a time.
const { parentPort } = require('node:worker_threads');
const calls = require('./calls');

parentPort.on('message', ({ id, name, args }) => {
  let reply;
  try {
    reply = calls[name](...args);
  } catch (e) {
    reply = { rc: -1, message: String((e && e.stack) || e) };
  }
  parentPort.postMessage({ id, ...reply });
});
