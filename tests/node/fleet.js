'use strict';
// A Node.js client of the mixed fleet (tests/bindings.rs): takes the lock
// ROUNDS times and appends "enter SERIAL LABEL" and "leave SERIAL LABEL" to
// LOGFILE while it holds it.
//
//   node fleet.js REDIS_URL RESOURCE LABEL ROUNDS LOGFILE
const fs = require('node:fs');
const path = require('node:path');
const { Locker } = require(path.join(__dirname, '../../bindings/node'));

const [url, resource, label, rounds, logfile] = process.argv.slice(2);

(async () => {
  const locker = new Locker(url);
  const log = fs.openSync(logfile, 'a');
  for (let i = 0; i < Number(rounds); i++) {
    const lock = await locker.lock(resource, { label, expire: 10, timeout: 60 });
    fs.writeSync(log, `enter ${lock.serial} ${label}\n`);
    await new Promise((r) => setTimeout(r, 2));
    fs.writeSync(log, `leave ${lock.serial} ${label}\n`);
    await lock.release();
  }
  fs.closeSync(log);
  await locker.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
