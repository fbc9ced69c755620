/*
 * Misused handles through the C ABI: a handle of one kind passed as
 * another, made-up and garbage values, stale handles, unknown result codes.
 * Each must answer an error (TURN_ERR_INVALID_ARGUMENT), never act on
 * someone else's object; only a real handle of the parent used in a forked
 * child answers TURN_ERR_FORKED.
 *
 *   handles REDIS_URL CHECK
 *
 * runs one CHECK (a function below) in a process of its own, after making
 * the first locker, lock and cancel token of the process: the attacks are
 * aimed at the very first handles of each kind.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "turn.h"

static int failures = 0;

#define EXPECT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: expected %s (last error: %s)\n", __FILE__, \
                    __LINE__, #cond, turn_last_error());                      \
            failures++;                                                       \
        }                                                                     \
    } while (0)

#define EXPECT_RC(call, want)                                                 \
    do {                                                                      \
        turn_result got_ = (call);                                            \
        if (got_ != (want)) {                                                 \
            fprintf(stderr, "%s:%d: %s gave %s, expected %s (%s)\n",          \
                    __FILE__, __LINE__, #call, turn_result_str(got_),         \
                    turn_result_str(want), turn_last_error());                \
            failures++;                                                       \
        }                                                                     \
    } while (0)

/* Values nobody was given: small integers, all ones, an object's address, and
 * (on 64-bit) the value the first locker and lock of a process had when
 * handles were slot numbers. */
static uintptr_t made_up[16];
static size_t n_made_up = 0;

static void make_up_values(void) {
    static int some_object;
    uintptr_t values[] = {1, 2, 3, 4, 7, 8, 255, 0x12345, UINTPTR_MAX,
                          UINTPTR_MAX - 1, (uintptr_t)&some_object,
#if UINTPTR_MAX > 0xffffffffu
                          (uintptr_t)0x100000001ull, (uintptr_t)0x8000000000000001ull,
#endif
    };
    n_made_up = sizeof values / sizeof values[0];
    memcpy(made_up, values, sizeof values);
}

/* A live locker still takes and releases locks on `resource`. */
static void locker_still_works(turn_locker *locker, const char *resource) {
    turn_lock *lock = NULL;
    EXPECT_RC(turn_lock_acquire(locker, resource, "still", 0, 0, 5000, &lock), TURN_OK);
    EXPECT(lock != NULL);
    if (lock) EXPECT_RC(turn_lock_release(lock), TURN_OK);
}

static void freeing_a_lock_as_a_locker_frees_nothing(turn_locker *locker, turn_lock *lock,
                                                     turn_cancel *cancel) {
    (void)cancel;
    turn_locker_free((turn_locker *)lock);
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
    locker_still_works(locker, "c-handles-other");
}

static void freeing_a_handle_as_another_kind_frees_nothing(turn_locker *locker, turn_lock *lock,
                                                           turn_cancel *cancel) {
    turn_locker_free((turn_locker *)cancel);
    turn_cancel_free((turn_cancel *)locker);
    turn_cancel_free((turn_cancel *)lock);
    EXPECT_RC(turn_lock_release((turn_lock *)locker), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_release((turn_lock *)cancel), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
    EXPECT_RC(turn_cancel_fire(cancel), TURN_OK);
    locker_still_works(locker, "c-handles-other");
}

static void a_lock_where_a_locker_is_expected_is_invalid(turn_locker *locker, turn_lock *lock,
                                                         turn_cancel *cancel) {
    (void)cancel;
    turn_lock *got = NULL;
    turn_status *status = NULL;
    uint64_t indicator = 0;
    EXPECT_RC(turn_lock_acquire((turn_locker *)lock, "c-handles", "x", 0, 0, 0, &got),
              TURN_ERR_INVALID_ARGUMENT);
    EXPECT(got == NULL);
    EXPECT_RC(turn_status_get((turn_locker *)lock, "c-handles", &status), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(status == NULL);
    EXPECT_RC(turn_bump((turn_locker *)lock, "c-handles", &indicator), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_reset((turn_locker *)lock, "c-handles"), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_cancel_fire((turn_cancel *)lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
    locker_still_works(locker, "c-handles-other");
}

static void a_locker_or_cancel_where_a_lock_is_expected_is_invalid(turn_locker *locker,
                                                                   turn_lock *lock,
                                                                   turn_cancel *cancel) {
    uint64_t token = 0;
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
    EXPECT_RC(turn_lock_check((turn_lock *)locker), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_token((turn_lock *)locker, &token), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(turn_lock_serial((turn_lock *)locker) == 0);
    EXPECT_RC(turn_lock_release((turn_lock *)locker), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_check((turn_lock *)cancel), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_release((turn_lock *)cancel), TURN_ERR_INVALID_ARGUMENT);
    turn_lock *got = NULL;
    EXPECT_RC(turn_lock_acquire((turn_locker *)cancel, "c-handles", "x", 0, 0, 0, &got),
              TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_acquire_cancelable(locker, "c-handles-other", "x", 0, 0, 0,
                                           (turn_cancel *)locker, &got),
              TURN_ERR_INVALID_ARGUMENT);
    EXPECT(got == NULL);
    locker_still_works(locker, "c-handles-other");
}

static void made_up_values_are_invalid_never_forked(turn_locker *locker, turn_lock *lock,
                                                    turn_cancel *cancel) {
    (void)cancel;
    for (size_t i = 0; i < n_made_up; i++) {
        uintptr_t v = made_up[i];
        turn_lock *got = NULL;
        turn_status *status = NULL;
        uint64_t token = 0;
        EXPECT_RC(turn_lock_acquire((turn_locker *)v, "c-handles", "x", 0, 0, 0, &got),
                  TURN_ERR_INVALID_ARGUMENT);
        EXPECT_RC(turn_status_get((turn_locker *)v, "c-handles", &status), TURN_ERR_INVALID_ARGUMENT);
        EXPECT_RC(turn_lock_check((turn_lock *)v), TURN_ERR_INVALID_ARGUMENT);
        EXPECT_RC(turn_lock_token((turn_lock *)v, &token), TURN_ERR_INVALID_ARGUMENT);
        EXPECT(turn_lock_serial((turn_lock *)v) == 0);
        EXPECT_RC(turn_cancel_fire((turn_cancel *)v), TURN_ERR_INVALID_ARGUMENT);
        EXPECT_RC(turn_lock_release((turn_lock *)v), TURN_ERR_INVALID_ARGUMENT);
        turn_locker_free((turn_locker *)v);
        turn_cancel_free((turn_cancel *)v);
        EXPECT(got == NULL && status == NULL);
    }
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
    locker_still_works(locker, "c-handles-other");
}

static void a_stale_lock_is_invalid_and_never_a_newer_one(turn_locker *locker, turn_lock *lock,
                                                          turn_cancel *cancel) {
    (void)lock;
    (void)cancel;
    turn_lock *stale = NULL, *fresh = NULL;
    EXPECT_RC(turn_lock_acquire(locker, "c-stale", "old", 0, 0, 5000, &stale), TURN_OK);
    EXPECT_RC(turn_lock_release(stale), TURN_OK);
    for (int round = 0; round < 50; round++) {
        EXPECT_RC(turn_lock_acquire(locker, "c-stale", "new", 0, 0, 5000, &fresh), TURN_OK);
        EXPECT(fresh != stale);
        EXPECT_RC(turn_lock_check(stale), TURN_ERR_INVALID_ARGUMENT);
        EXPECT(turn_lock_serial(stale) == 0);
        EXPECT_RC(turn_lock_release(stale), TURN_ERR_INVALID_ARGUMENT);
        EXPECT_RC(turn_lock_check(fresh), TURN_OK); /* the stale release left it alone */
        EXPECT_RC(turn_lock_release(fresh), TURN_OK);
    }
}

static void unknown_result_codes_have_a_static_name(turn_locker *locker, turn_lock *lock,
                                                    turn_cancel *cancel) {
    (void)locker;
    (void)lock;
    (void)cancel;
    int codes[] = {-1, 12, 98, 100, 12345, INT_MIN, INT_MAX};
    const char *first = turn_result_str(-1);
    EXPECT(first != NULL && strlen(first) > 0);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *name = turn_result_str(codes[i]);
        EXPECT(name != NULL);
        if (name) EXPECT(strcmp(name, first) == 0 && strcmp(name, "TURN_OK") != 0);
    }
    EXPECT(strcmp(turn_result_str(TURN_ERR_CANCELED), "TURN_ERR_CANCELED") == 0);
    EXPECT(strcmp(turn_result_str(9), "TURN_ERR_FORKED") == 0);
}

/* In a child: the parent's locker and lock answer TURN_ERR_FORKED; the
 * parent's lock given as a locker, and made-up values, are invalid. */
static void in_a_forked_child_only_real_handles_are_forked(turn_locker *locker, turn_lock *lock,
                                                           turn_cancel *cancel) {
    (void)cancel;
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        turn_lock *got = NULL;
        if (turn_lock_acquire(locker, "c-handles", "child", 0, 0, 0, &got) != TURN_ERR_FORKED) bad |= 1;
        if (turn_lock_check(lock) != TURN_ERR_FORKED) bad |= 2;
        if (turn_lock_acquire((turn_locker *)lock, "c-handles", "child", 0, 0, 0, &got) !=
            TURN_ERR_INVALID_ARGUMENT)
            bad |= 4;
        for (size_t i = 0; i < n_made_up; i++) {
            if (turn_lock_acquire((turn_locker *)made_up[i], "c-handles", "child", 0, 0, 0, &got) !=
                TURN_ERR_INVALID_ARGUMENT)
                bad |= 8;
            if (turn_lock_check((turn_lock *)made_up[i]) != TURN_ERR_INVALID_ARGUMENT) bad |= 16;
        }
        turn_locker_free((turn_locker *)lock);
        turn_locker_free(locker); /* the parent's: frees nothing */
        _exit(bad);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    EXPECT(WIFEXITED(st));
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        fprintf(stderr, "child checks failed: mask %d\n", WEXITSTATUS(st));
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
}

static const struct {
    const char *name;
    void (*run)(turn_locker *, turn_lock *, turn_cancel *);
} checks[] = {
    {"freeing_a_lock_as_a_locker_frees_nothing", freeing_a_lock_as_a_locker_frees_nothing},
    {"freeing_a_handle_as_another_kind_frees_nothing", freeing_a_handle_as_another_kind_frees_nothing},
    {"a_lock_where_a_locker_is_expected_is_invalid", a_lock_where_a_locker_is_expected_is_invalid},
    {"a_locker_or_cancel_where_a_lock_is_expected_is_invalid",
     a_locker_or_cancel_where_a_lock_is_expected_is_invalid},
    {"made_up_values_are_invalid_never_forked", made_up_values_are_invalid_never_forked},
    {"a_stale_lock_is_invalid_and_never_a_newer_one", a_stale_lock_is_invalid_and_never_a_newer_one},
    {"unknown_result_codes_have_a_static_name", unknown_result_codes_have_a_static_name},
    {"in_a_forked_child_only_real_handles_are_forked", in_a_forked_child_only_real_handles_are_forked},
};

int main(int argc, char **argv) {
    size_t n_checks = sizeof checks / sizeof checks[0];
    size_t which = n_checks;
    for (size_t i = 0; argc == 3 && i < n_checks; i++)
        if (strcmp(argv[2], checks[i].name) == 0) which = i;
    if (which == n_checks) {
        fprintf(stderr, "usage: %s REDIS_URL CHECK, CHECK one of:\n", argv[0]);
        for (size_t i = 0; i < n_checks; i++) fprintf(stderr, "  %s\n", checks[i].name);
        return 2;
    }
    make_up_values();
    /* the first locker, lock and cancel token of this process */
    turn_locker *locker = NULL;
    turn_lock *lock = NULL;
    turn_cancel *cancel = NULL;
    EXPECT_RC(turn_locker_new(argv[1], &locker), TURN_OK);
    if (!locker) return 1;
    EXPECT_RC(turn_lock_acquire(locker, "c-handles", "first", 0, 0, 5000, &lock), TURN_OK);
    if (!lock) return 1;
    EXPECT_RC(turn_cancel_new(&cancel), TURN_OK);

    checks[which].run(locker, lock, cancel);

    EXPECT_RC(turn_lock_release(lock), TURN_OK);
    turn_cancel_free(cancel);
    turn_locker_free(locker);
    if (failures) fprintf(stderr, "%s: %d failure(s)\n", checks[which].name, failures);
    else printf("handles: %s passed\n", checks[which].name);
    return failures ? 1 : 0;
}
