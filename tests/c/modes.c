/*
 * The shared modes through the C ABI: semaphores (turn_semaphore_*),
 * read-write locks (turn_rwlock_*) and all-or-none
 * (turn_lock_acquire_all and its cancelable form), blocking and pending.
 *
 *   modes REDIS_URL DOOMED_URL DOOMED_PORT
 *
 * DOOMED_URL is a server of its own that this program shuts down (through
 * redis-cli on DOOMED_PORT) after connecting a locker to it: the argument
 * errors must be answered there, before any round trip.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turn.h"
#include "check.h"

/* A handle value no call writes: out-parameters must keep it on failure. */
#define UNTOUCHED ((turn_lock *)(uintptr_t)0x5eed)
#define UNTOUCHED_PENDING ((turn_pending *)(uintptr_t)0x5eed)

static int readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* The lock of a pending acquire whose turn comes within 30 s, or NULL. */
static turn_lock *finish_within_30s(turn_pending *p) {
    turn_lock *lock = NULL;
    if (!readable(turn_pending_fd(p), 30000)) return NULL;
    if (turn_pending_finish(p, &lock) != TURN_OK) return NULL;
    return lock;
}

static void argument_errors(turn_locker *locker) {
    turn_lock *lock = UNTOUCHED;
    turn_pending *pending = UNTOUCHED_PENDING;

    EXPECT_RC(turn_semaphore_acquire(locker, "sem", "l", 0, 1, 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(turn_last_error(), "permit") != NULL);
    EXPECT_RC(turn_semaphore_acquire(locker, "sem", "l", 2, 0, 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_semaphore_acquire(locker, "sem", "l", 2, 3, 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(turn_last_error(), "weight") != NULL);
    EXPECT_RC(turn_semaphore_acquire(locker, NULL, "l", 2, 1, 0, 0, -1, &lock), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_semaphore_acquire(locker, "sem", "l", 2, 1, -1, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_rwlock_acquire(locker, NULL, "l", 0, 0, 0, -1, &lock), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_rwlock_acquire(locker, "", "l", 1, 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(lock == UNTOUCHED);

    EXPECT_RC(turn_semaphore_start(locker, "sem", "l", 0, 1, 0, 0, -1, &pending), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_semaphore_start(locker, "sem", "l", 2, 3, 0, 0, -1, &pending), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_semaphore_start(locker, NULL, "l", 2, 1, 0, 0, -1, &pending), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_semaphore_start(locker, "sem", "l", 2, 1, 0, 0, 0, &pending), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(turn_last_error(), "timeout") != NULL);
    EXPECT_RC(turn_rwlock_start(locker, NULL, "l", 0, 0, 0, -1, &pending), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_rwlock_start(locker, "rw", "l", 1, 0, 0, 0, &pending), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(pending == UNTOUCHED_PENDING);

    const char *names[65];
    char storage[65][8];
    for (int i = 0; i < 65; i++) {
        snprintf(storage[i], sizeof storage[i], "r%d", i);
        names[i] = storage[i];
    }
    turn_lock *out[65];
    for (int i = 0; i < 65; i++) out[i] = UNTOUCHED;
    EXPECT_RC(turn_lock_acquire_all(locker, names, 0, "l", 0, 0, -1, out), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_acquire_all(locker, names, 65, "l", 0, 0, -1, out), TURN_ERR_INVALID_ARGUMENT);
    const char *twice[] = {"a", "b", "a"};
    EXPECT_RC(turn_lock_acquire_all(locker, twice, 3, "l", 0, 0, -1, out), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(turn_last_error(), "\"a\"") != NULL);
    const char *with_null[] = {"a", NULL};
    EXPECT_RC(turn_lock_acquire_all(locker, with_null, 2, "l", 0, 0, -1, out), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_lock_acquire_all(locker, NULL, 2, "l", 0, 0, -1, out), TURN_ERR_NULL_ARGUMENT);
    int untouched = 1;
    for (int i = 0; i < 65; i++) untouched &= out[i] == UNTOUCHED;
    EXPECT(untouched);
}

static void semaphores(turn_locker *locker) {
    /* Two weight-1 holders of 2 permits at once; a third would block. */
    turn_lock *a = NULL, *b = NULL, *c = UNTOUCHED;
    EXPECT_RC(turn_semaphore_acquire(locker, "sem-2", "a", 2, 1, 0, 0, 30000, &a), TURN_OK);
    EXPECT_RC(turn_semaphore_acquire(locker, "sem-2", "b", 2, 1, 0, 0, 30000, &b), TURN_OK);
    EXPECT_RC(turn_lock_check(a), TURN_OK);
    EXPECT_RC(turn_lock_check(b), TURN_OK);
    EXPECT_RC(turn_semaphore_acquire(locker, "sem-2", "c", 2, 1, 0, 0, 0, &c), TURN_ERR_WOULD_BLOCK);
    EXPECT(c == UNTOUCHED);
    /* A permit given back is taken at once. */
    EXPECT_RC(turn_lock_release(a), TURN_OK);
    EXPECT_RC(turn_semaphore_acquire(locker, "sem-2", "c", 2, 1, 0, 0, 0, &c), TURN_OK);
    uint64_t tb = 0, tc = 0;
    EXPECT_RC(turn_lock_token(b, &tb), TURN_OK);
    EXPECT_RC(turn_lock_token(c, &tc), TURN_OK);
    EXPECT(tc > tb);
    EXPECT_RC(turn_lock_release(b), TURN_OK);
    EXPECT_RC(turn_lock_release(c), TURN_OK);

    /* Weight 2 of 3, then weight 2 would block. */
    turn_lock *two = NULL, *more = UNTOUCHED;
    EXPECT_RC(turn_semaphore_acquire(locker, "sem-3", "two", 3, 2, 0, 0, 30000, &two), TURN_OK);
    EXPECT_RC(turn_semaphore_acquire(locker, "sem-3", "more", 3, 2, 0, 0, 0, &more), TURN_ERR_WOULD_BLOCK);
    EXPECT(more == UNTOUCHED);

    /* No barging: a weight-2 ticket waiting (pending) holds back a later
     * weight-1 try that would fit; it goes once the holder leaves. */
    turn_pending *waiting = NULL;
    EXPECT_RC(turn_semaphore_start(locker, "sem-3", "waiting", 3, 2, 0, 0, -1, &waiting), TURN_OK);
    turn_lock *out = NULL;
    EXPECT_RC(turn_pending_finish(waiting, &out), TURN_ERR_WOULD_BLOCK);
    turn_lock *one = UNTOUCHED;
    EXPECT_RC(turn_semaphore_acquire(locker, "sem-3", "one", 3, 1, 0, 0, 0, &one), TURN_ERR_WOULD_BLOCK);
    EXPECT(one == UNTOUCHED);
    EXPECT_RC(turn_lock_release(two), TURN_OK);
    turn_lock *waited = finish_within_30s(waiting);
    EXPECT(waited != NULL);
    if (waited) {
        EXPECT_RC(turn_lock_check(waited), TURN_OK);
        EXPECT_RC(turn_lock_release(waited), TURN_OK);
    }

    /* A pending semaphore acquire that fits is granted by its draw. */
    turn_pending *free_now = NULL;
    EXPECT_RC(turn_semaphore_start(locker, "sem-3", "free", 3, 3, 0, 0, 5000, &free_now), TURN_OK);
    EXPECT(readable(turn_pending_fd(free_now), 0));
    turn_lock *all = finish_within_30s(free_now);
    EXPECT(all != NULL);
    if (all) EXPECT_RC(turn_lock_release(all), TURN_OK);
}

static void read_write(turn_locker *locker) {
    /* Two shared holders at once; an exclusive try would block. */
    turn_lock *r1 = NULL, *r2 = NULL, *w = UNTOUCHED;
    EXPECT_RC(turn_rwlock_acquire(locker, "rw", "reader 1", 0, 0, 0, -1, &r1), TURN_OK);
    EXPECT_RC(turn_rwlock_acquire(locker, "rw", "reader 2", 0, 0, 0, 30000, &r2), TURN_OK);
    EXPECT_RC(turn_lock_check(r1), TURN_OK);
    EXPECT_RC(turn_lock_check(r2), TURN_OK);
    EXPECT_RC(turn_rwlock_acquire(locker, "rw", "writer", 1, 0, 0, 0, &w), TURN_ERR_WOULD_BLOCK);
    EXPECT(w == UNTOUCHED);

    /* A writer waits; a reader drawn after it waits for it (FIFO), a
     * shared try would block. */
    turn_pending *writer = NULL, *reader = NULL;
    EXPECT_RC(turn_rwlock_start(locker, "rw", "writer", 1, 0, 0, -1, &writer), TURN_OK);
    EXPECT_RC(turn_rwlock_start(locker, "rw", "reader 3", 0, 0, 0, -1, &reader), TURN_OK);
    turn_lock *out = UNTOUCHED;
    EXPECT_RC(turn_rwlock_acquire(locker, "rw", "reader 4", 0, 0, 0, 0, &out), TURN_ERR_WOULD_BLOCK);
    EXPECT_RC(turn_pending_finish(writer, &out), TURN_ERR_WOULD_BLOCK);
    EXPECT_RC(turn_pending_finish(reader, &out), TURN_ERR_WOULD_BLOCK);
    EXPECT(out == UNTOUCHED);

    /* The readers leave: the writer holds, alone; the later reader still waits. */
    EXPECT_RC(turn_lock_release(r1), TURN_OK);
    EXPECT_RC(turn_lock_release(r2), TURN_OK);
    turn_lock *held = finish_within_30s(writer);
    EXPECT(held != NULL);
    EXPECT_RC(turn_pending_finish(reader, &out), TURN_ERR_WOULD_BLOCK);
    if (held) EXPECT_RC(turn_lock_release(held), TURN_OK);
    turn_lock *late = finish_within_30s(reader);
    EXPECT(late != NULL);
    if (late) EXPECT_RC(turn_lock_release(late), TURN_OK);
}

static void wrong_kinds(turn_locker *locker) {
    turn_lock *plain = NULL, *sem = NULL, *rw = NULL, *out = UNTOUCHED;
    EXPECT_RC(turn_lock_acquire(locker, "kind-plain", "plain", 0, 0, -1, &plain), TURN_OK);
    EXPECT_RC(turn_semaphore_acquire(locker, "kind-plain", "s", 2, 1, 0, 0, 0, &out), TURN_ERR_WRONG_KIND);
    EXPECT_RC(turn_rwlock_acquire(locker, "kind-plain", "r", 0, 0, 0, 0, &out), TURN_ERR_WRONG_KIND);

    EXPECT_RC(turn_semaphore_acquire(locker, "kind-sem", "s", 2, 1, 0, 0, -1, &sem), TURN_OK);
    EXPECT_RC(turn_lock_acquire(locker, "kind-sem", "p", 0, 0, 0, &out), TURN_ERR_WRONG_KIND);
    EXPECT_RC(turn_rwlock_acquire(locker, "kind-sem", "r", 0, 0, 0, 0, &out), TURN_ERR_WRONG_KIND);
    EXPECT_RC(turn_semaphore_acquire(locker, "kind-sem", "s", 3, 1, 0, 0, 0, &out), TURN_ERR_WRONG_KIND);
    /* A pending acquire's draw answers through its fd and finish. */
    turn_pending *pending = NULL;
    EXPECT_RC(turn_semaphore_start(locker, "kind-sem", "s", 3, 1, 0, 0, -1, &pending), TURN_OK);
    EXPECT(pending && readable(turn_pending_fd(pending), 30000));
    if (pending) EXPECT_RC(turn_pending_finish(pending, &out), TURN_ERR_WRONG_KIND);

    EXPECT_RC(turn_rwlock_acquire(locker, "kind-rw", "r", 1, 0, 0, -1, &rw), TURN_OK);
    EXPECT_RC(turn_lock_acquire(locker, "kind-rw", "p", 0, 0, 0, &out), TURN_ERR_WRONG_KIND);
    EXPECT_RC(turn_semaphore_acquire(locker, "kind-rw", "s", 2, 1, 0, 0, 0, &out), TURN_ERR_WRONG_KIND);
    pending = NULL;
    EXPECT_RC(turn_rwlock_start(locker, "kind-plain", "r", 0, 0, 0, -1, &pending), TURN_OK);
    EXPECT(pending && readable(turn_pending_fd(pending), 30000));
    if (pending) EXPECT_RC(turn_pending_finish(pending, &out), TURN_ERR_WRONG_KIND);
    EXPECT(out == UNTOUCHED);

    /* The kind stays with the idle queue until it is reset. */
    EXPECT_RC(turn_lock_release(plain), TURN_OK);
    EXPECT_RC(turn_lock_release(sem), TURN_OK);
    EXPECT_RC(turn_lock_release(rw), TURN_OK);
    EXPECT_RC(turn_lock_acquire(locker, "kind-sem", "p", 0, 0, 0, &out), TURN_ERR_WRONG_KIND);
    EXPECT_RC(turn_reset(locker, "kind-sem"), TURN_OK);
    EXPECT_RC(turn_lock_acquire(locker, "kind-sem", "p", 0, 0, 0, &out), TURN_OK);
    if (out != UNTOUCHED) EXPECT_RC(turn_lock_release(out), TURN_OK);
}

static void all_or_none(turn_locker *locker, turn_locker *other) {
    /* Queues with different next serials, so that the handles show
     * their resource: all-a's next ticket is 2, all-c's 3, all-b's 1. */
    const char *seed[] = {"all-a", "all-c", "all-c"};
    for (int i = 0; i < 3; i++) {
        turn_lock *l = NULL;
        EXPECT_RC(turn_lock_acquire(locker, seed[i], "seed", 0, 0, -1, &l), TURN_OK);
        if (l) EXPECT_RC(turn_lock_release(l), TURN_OK);
    }
    const char *names[] = {"all-c", "all-a", "all-b"};
    turn_lock *locks[3] = {NULL, NULL, NULL};
    EXPECT_RC(turn_lock_acquire_all(locker, names, 3, "all", 0, 0, -1, locks), TURN_OK);
    EXPECT(turn_lock_serial(locks[0]) == 3);
    EXPECT(turn_lock_serial(locks[1]) == 2);
    EXPECT(turn_lock_serial(locks[2]) == 1);
    for (int i = 0; i < 3; i++) {
        uint64_t token = 0;
        EXPECT_RC(turn_lock_check(locks[i]), TURN_OK);
        EXPECT_RC(turn_lock_token(locks[i], &token), TURN_OK);
        EXPECT(token > 0);
    }
    /* Each is held: another locker's try of each would block. */
    for (int i = 0; i < 3; i++) {
        turn_lock *l = UNTOUCHED;
        EXPECT_RC(turn_lock_acquire(other, names[i], "try", 0, 0, 0, &l), TURN_ERR_WOULD_BLOCK);
    }
    for (int i = 0; i < 3; i++) EXPECT_RC(turn_lock_release(locks[i]), TURN_OK);

    /* A busy resource, last in name order: the call times out and every
     * lock it took is released, so all-a is free at once. */
    turn_lock *busy = NULL;
    EXPECT_RC(turn_lock_acquire(other, "all-c", "busy", 0, 0, -1, &busy), TURN_OK);
    turn_lock *none[3] = {UNTOUCHED, UNTOUCHED, UNTOUCHED};
    EXPECT_RC(turn_lock_acquire_all(locker, names, 3, "all", 0, 0, 300, none), TURN_ERR_TIMEOUT);
    EXPECT(strstr(turn_last_error(), "all-c") != NULL);
    EXPECT(none[0] == UNTOUCHED && none[1] == UNTOUCHED && none[2] == UNTOUCHED);
    turn_lock *first = NULL;
    EXPECT_RC(turn_lock_acquire(other, "all-a", "after", 0, 0, 0, &first), TURN_OK);
    if (first) EXPECT_RC(turn_lock_release(first), TURN_OK);

    /* A fired cancel token ends the cancelable form's wait the same way. */
    turn_cancel *cancel = NULL;
    EXPECT_RC(turn_cancel_new(&cancel), TURN_OK);
    EXPECT_RC(turn_cancel_fire(cancel), TURN_OK);
    EXPECT_RC(turn_lock_acquire_all_cancelable(locker, names, 3, "all", 0, 0, -1, cancel, none), TURN_ERR_CANCELED);
    EXPECT(none[0] == UNTOUCHED && none[1] == UNTOUCHED && none[2] == UNTOUCHED);
    EXPECT_RC(turn_lock_acquire(other, "all-a", "after", 0, 0, 0, &first), TURN_OK);
    if (first) EXPECT_RC(turn_lock_release(first), TURN_OK);
    turn_cancel_free(cancel);
    EXPECT_RC(turn_lock_release(busy), TURN_OK);
}

int main(int argc, char **argv) {
    if (argc != 4) FAIL("usage: %s REDIS_URL DOOMED_URL DOOMED_PORT", argv[0]);

    EXPECT(TURN_ERR_WRONG_KIND == 12);
    EXPECT(strcmp(turn_result_str(12), "TURN_ERR_WRONG_KIND") == 0);

    /* Argument errors on a locker whose server is gone: answered before
     * any round trip (a round trip would be TURN_ERR_CONNECTION). */
    turn_locker *doomed = NULL;
    if (turn_locker_new(argv[2], &doomed) != TURN_OK) FAIL("doomed locker: %s", turn_last_error());
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -p %s shutdown nosave >/dev/null 2>&1", argv[3]);
    if (system(cmd) == -1) FAIL("redis-cli did not run");
    argument_errors(doomed);
    turn_lock *unreachable = NULL;
    EXPECT_RC(turn_semaphore_acquire(doomed, "sem", "l", 2, 1, 0, 0, 0, &unreachable), TURN_ERR_CONNECTION);
    turn_locker_free(doomed);

    turn_locker *locker = NULL, *other = NULL;
    if (turn_locker_new(argv[1], &locker) != TURN_OK) FAIL("locker: %s", turn_last_error());
    if (turn_locker_new(argv[1], &other) != TURN_OK) FAIL("other locker: %s", turn_last_error());
    semaphores(locker);
    read_write(locker);
    wrong_kinds(locker);
    all_or_none(locker, other);
    turn_locker_free(other);
    turn_locker_free(locker);

    if (failures) FAIL("modes: %d failure(s)", failures);
    printf("modes: all checks passed\n");
    return 0;
}
