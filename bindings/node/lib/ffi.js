'use strict';
// The C ABI of libturn (include/turn.h), declared for koffi. Handles are
// opaque pointers, which koffi gives as BigInt values: they are checked
// numbers the library never dereferences, so they cross threads as they are.

const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');

// The soname: what the dynamic linker is asked for last.
const SONAME = 'libturn.so.0';

// Where the library is looked for, in order: TURN_LIBRARY alone when it is
// set; else a libturn.so in this package's folder; in the repository, the
// build tree's (CARGO_TARGET_DIR's, else target/, release then debug);
// then the system's, through the dynamic linker.
function candidates() {
  if (process.env.TURN_LIBRARY) return [process.env.TURN_LIBRARY];
  const here = path.join(__dirname, '..');
  const repository = path.join(here, '..', '..');
  const local = [path.join(here, 'libturn.so')];
  if (fs.existsSync(path.join(repository, 'include', 'turn.h'))) {
    const target = process.env.CARGO_TARGET_DIR || path.join(repository, 'target');
    local.push(path.join(target, 'release', 'libturn.so'), path.join(target, 'debug', 'libturn.so'));
  }
  return [...local.filter((p) => fs.existsSync(p)), SONAME, 'libturn.so'];
}

function load() {
  const tried = [];
  for (const p of candidates()) {
    try {
      return koffi.load(p);
    } catch (e) {
      tried.push(`${p}: ${e.message}`);
      if (process.env.TURN_LIBRARY) {
        throw new Error(`cannot load libturn from TURN_LIBRARY=${p}: ${e.message}`);
      }
    }
  }
  throw new Error(
    'cannot load libturn: set TURN_LIBRARY to the path of libturn.so, or install ' +
      `the library where the dynamic linker finds ${SONAME}; tried:\n  ${tried.join('\n  ')}`,
  );
}

const lib = load();

// Opaque handle types, each a pointer the library checks.
for (const name of ['turn_locker', 'turn_lock', 'turn_pending', 'turn_status', 'turn_options']) {
  koffi.opaque(name);
}

const PROTOTYPES = [
  'int turn_locker_new_with_options(const char *url, const turn_options *options, _Out_ turn_locker **out)',
  'void turn_locker_free(turn_locker *locker)',
  'int turn_locker_health(const turn_locker *locker)',
  'int turn_bump(turn_locker *locker, const char *resource, _Out_ uint64_t *indicator)',
  'int turn_reset(turn_locker *locker, const char *resource)',
  'int turn_announce(turn_locker *locker, const char *resource, const char *line)',
  'int turn_lock_acquire(turn_locker *locker, const char *resource, const char *label, uint32_t expire_ms, uint32_t patience_ms, int64_t timeout_ms, _Out_ turn_lock **out)',
  'int turn_lock_release(turn_lock *lock)',
  'uint64_t turn_lock_serial(const turn_lock *lock)',
  'int turn_lock_token(const turn_lock *lock, _Out_ uint64_t *out)',
  'int turn_lock_check(const turn_lock *lock)',
  'int turn_lock_lost_fd(const turn_lock *lock)',
  'int turn_acquire_start(turn_locker *locker, const char *resource, const char *label, uint32_t expire_ms, uint32_t patience_ms, int64_t timeout_ms, _Out_ turn_pending **out)',
  'int turn_pending_fd(const turn_pending *pending)',
  'int turn_pending_finish(turn_pending *pending, _Out_ turn_lock **out)',
  'int turn_pending_cancel(turn_pending *pending)',
  'int turn_pending_position(const turn_pending *pending, _Out_ uint64_t *ahead)',
  'int turn_semaphore_acquire(turn_locker *locker, const char *resource, const char *label, uint32_t permits, uint32_t weight, int64_t expire_ms, int64_t patience_ms, int64_t timeout_ms, _Out_ turn_lock **out)',
  'int turn_semaphore_start(turn_locker *locker, const char *resource, const char *label, uint32_t permits, uint32_t weight, int64_t expire_ms, int64_t patience_ms, int64_t timeout_ms, _Out_ turn_pending **out)',
  'int turn_rwlock_acquire(turn_locker *locker, const char *resource, const char *label, int exclusive, int64_t expire_ms, int64_t patience_ms, int64_t timeout_ms, _Out_ turn_lock **out)',
  'int turn_rwlock_start(turn_locker *locker, const char *resource, const char *label, int exclusive, int64_t expire_ms, int64_t patience_ms, int64_t timeout_ms, _Out_ turn_pending **out)',
  'int turn_status_get(turn_locker *locker, const char *resource, _Out_ turn_status **out)',
  'uint64_t turn_status_indicator(const turn_status *status)',
  'uint64_t turn_status_dispenser(const turn_status *status)',
  'size_t turn_status_len(const turn_status *status)',
  'uint64_t turn_status_serial_at(const turn_status *status, size_t i)',
  'const char *turn_status_label_at(const turn_status *status, size_t i)',
  'int turn_status_kind(const turn_status *status)',
  'uint32_t turn_status_permits(const turn_status *status)',
  'int turn_status_held_at(const turn_status *status, size_t i)',
  'uint32_t turn_status_weight_at(const turn_status *status, size_t i)',
  'int turn_status_exclusive_at(const turn_status *status, size_t i)',
  'int turn_status_ours_at(const turn_status *status, size_t i)',
  'uint64_t turn_status_token_at(const turn_status *status, size_t i)',
  'int64_t turn_status_age_ms_at(const turn_status *status, size_t i)',
  'int64_t turn_status_lease_left_ms_at(const turn_status *status, size_t i)',
  'uint64_t turn_status_position_at(const turn_status *status, size_t i)',
  'void turn_status_free(turn_status *status)',
  'int turn_locker_metrics(const turn_locker *locker, char *buf, size_t len, _Out_ size_t *needed)',
  'int turn_options_new(_Out_ turn_options **out)',
  'void turn_options_free(turn_options *options)',
  'int turn_options_set_prefix(turn_options *options, const char *prefix)',
  'int turn_options_set_connect_timeout_ms(turn_options *options, uint32_t millis)',
  'int turn_options_set_command_timeout_ms(turn_options *options, uint32_t millis)',
  'int turn_options_set_pool_size(turn_options *options, uint32_t size)',
  'int turn_options_set_grace_ms(turn_options *options, uint32_t millis)',
  'int turn_options_set_clock_serials(turn_options *options, int32_t enabled)',
  'int turn_options_set_tls(turn_options *options, const char *ca_file, const char *cert_file, const char *key_file)',
  'int turn_options_set_min_replicas(turn_options *options, uint32_t replicas, uint32_t timeout_ms)',
  'const char *turn_result_str(int code)',
  'const char *turn_last_error(void)',
  'const char *turn_version(void)',
];

const fn = {};
for (const proto of PROTOTYPES) {
  const f = lib.func(proto);
  fn[proto.match(/(turn_\w+)\(/)[1]] = f;
}

module.exports = { fn, koffi, PROTOTYPES };
