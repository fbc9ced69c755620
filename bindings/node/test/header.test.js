'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { PROTOTYPES } = require('../lib/ffi');

// "ret name(type a, type b)" as [name, "ret(type,type)"], parameter names,
// const and koffi's _Out_ left out.
function signature(decl) {
  const m = /^\s*([\w\s*]+?)\s*\b(turn_\w+)\s*\(([^)]*)\)/s.exec(decl);
  const clean = (t) => t.replace(/\b(const|_Out_)\b/g, '').replace(/\s+/g, ' ').replace(/\s*\*/g, '*').trim();
  const params = m[3].trim() === 'void' || m[3].trim() === '' ? [] : m[3].split(',').map((p) => clean(p.trim().replace(/\s*\w+$/, '')));
  return [m[2], `${clean(m[1]).replace(/^turn_result$/, 'int')}(${params.join(',')})`];
}

test('every function the binding declares is declared so in include/turn.h', () => {
  const header = fs
    .readFileSync(path.join(__dirname, '../../../include/turn.h'), 'utf8')
    .replace(/\/\*.*?\*\//gs, '');
  const declared = new Map();
  for (const m of header.matchAll(/^[\w ]+?\**\s*\bturn_\w+\([^;{]*\);/gms)) {
    const [name, sig] = signature(m[0]);
    declared.set(name, sig);
  }
  assert.ok(declared.size > 40, `${declared.size} functions found in the header`);
  for (const proto of PROTOTYPES) {
    const [name, sig] = signature(proto);
    assert.equal(sig, declared.get(name), name);
  }
});
