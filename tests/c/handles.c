/*
 * Misused handles through the C ABI: a handle of one kind passed as
 * another, made-up and garbage values, stale handles, statuses and options
 * freed twice or used after free, guesses at another lock's handle, unknown
 * result codes. Each must answer an error (TURN_ERR_INVALID_ARGUMENT, or the
 * function's fallback: 0 or NULL), never act on someone else's object;
 * only a real handle of the parent used in a forked child answers
 * TURN_ERR_FORKED.
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
#include "check.h"

static const char *redis_url = NULL;

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
    EXPECT_RC(turn_announce((turn_locker *)lock, "c-handles", "x"), TURN_ERR_INVALID_ARGUMENT);
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
    int codes[] = {-1, 13, 98, 100, 12345, INT_MIN, INT_MAX};
    const char *first = turn_result_str(-1);
    EXPECT(first != NULL && strlen(first) > 0);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *name = turn_result_str(codes[i]);
        EXPECT(name != NULL);
        if (name) EXPECT(strcmp(name, first) == 0 && strcmp(name, "TURN_OK") != 0);
    }
    EXPECT(strcmp(turn_result_str(TURN_ERR_CANCELED), "TURN_ERR_CANCELED") == 0);
    EXPECT(strcmp(turn_result_str(9), "TURN_ERR_FORKED") == 0);
    EXPECT(strcmp(turn_result_str(TURN_ERR_WRONG_KIND), "TURN_ERR_WRONG_KIND") == 0);
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

/* A status's readers give their fallback (0 or NULL) for a value that is not
 * a live status, and its free does nothing. */
static void status_readers_give_the_fallback(uintptr_t v) {
    const turn_status *s = (const turn_status *)v;
    EXPECT(turn_status_indicator(s) == 0);
    EXPECT(turn_status_dispenser(s) == 0);
    EXPECT(turn_status_len(s) == 0);
    EXPECT(turn_status_serial_at(s, 0) == 0);
    EXPECT(turn_status_label_at(s, 0) == NULL);
    turn_status_free((turn_status *)v);
}

/* Every options call answers TURN_ERR_INVALID_ARGUMENT for a value that is
 * not a live options object, and its free does nothing. */
static void options_calls_are_invalid(uintptr_t v) {
    turn_options *o = (turn_options *)v;
    EXPECT_RC(turn_options_set_pool_size(o, 4), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_prefix(o, "p"), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_connect_timeout_ms(o, 100), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_command_timeout_ms(o, 100), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_grace_ms(o, 100), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_clock_serials(o, 1), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_tls(o, NULL, NULL, NULL), TURN_ERR_INVALID_ARGUMENT);
    turn_locker *l = NULL;
    EXPECT_RC(turn_locker_new_with_options(redis_url, o, &l), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(l == NULL);
    turn_options_free(o);
}

/* A status owned by this check, with one ticket labelled `label`. */
static turn_status *a_status(turn_locker *locker, const char *label) {
    turn_lock *held = NULL;
    turn_status *status = NULL;
    EXPECT_RC(turn_lock_acquire(locker, "c-status", label, 0, 0, 5000, &held), TURN_OK);
    EXPECT_RC(turn_status_get(locker, "c-status", &status), TURN_OK);
    if (held) EXPECT_RC(turn_lock_release(held), TURN_OK);
    EXPECT(status != NULL && turn_status_len(status) == 1);
    return status;
}

static void a_status_freed_twice_or_read_after_free_gives_the_fallback(turn_locker *locker,
                                                                      turn_lock *lock,
                                                                      turn_cancel *cancel) {
    (void)cancel;
    turn_status *status = a_status(locker, "kept");
    turn_status *other = a_status(locker, "other");
    if (!status || !other) return;
    const char *label = turn_status_label_at(status, 0);
    EXPECT(label != NULL && strcmp(label, "kept") == 0);
    turn_status_free(other);
    turn_status_free(other);
    status_readers_give_the_fallback((uintptr_t)other);
    /* the first status and its strings live on until it is freed */
    EXPECT(label && strcmp(label, "kept") == 0);
    EXPECT(turn_status_len(status) == 1 && turn_status_indicator(status) != 0);
    turn_status *newer = a_status(locker, "newer");
    EXPECT(newer != other);
    status_readers_give_the_fallback((uintptr_t)other);
    EXPECT(newer && strcmp(turn_status_label_at(newer, 0), "newer") == 0);
    turn_status_free(newer);
    turn_status_free(status);
    turn_status_free(status);
    status_readers_give_the_fallback((uintptr_t)status);
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
}

static void options_freed_twice_then_used_are_invalid(turn_locker *locker, turn_lock *lock,
                                                      turn_cancel *cancel) {
    (void)cancel;
    turn_options *opts = NULL, *kept = NULL;
    EXPECT_RC(turn_options_new(&opts), TURN_OK);
    EXPECT_RC(turn_options_new(&kept), TURN_OK);
    EXPECT_RC(turn_options_set_pool_size(opts, 2), TURN_OK);
    turn_options_free(opts);
    turn_options_free(opts);
    options_calls_are_invalid((uintptr_t)opts);
    /* another options object is left alone, and still makes lockers */
    EXPECT_RC(turn_options_set_prefix(kept, "c-opts"), TURN_OK);
    turn_locker *l = NULL;
    EXPECT_RC(turn_locker_new_with_options(redis_url, kept, &l), TURN_OK);
    turn_locker_free(l);
    turn_options_free(kept);
    options_calls_are_invalid((uintptr_t)kept);
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
    locker_still_works(locker, "c-handles-other");
}

/* Statuses and options are checked handles too: made-up values and handles
 * of every other kind answer the error or the fallback, never a crash. */
static void made_up_or_other_kinds_as_status_or_options_are_invalid(turn_locker *locker,
                                                                    turn_lock *lock,
                                                                    turn_cancel *cancel) {
    turn_status *status = a_status(locker, "mine");
    turn_options *opts = NULL;
    EXPECT_RC(turn_options_new(&opts), TURN_OK);
    for (size_t i = 0; i < n_made_up; i++) {
        status_readers_give_the_fallback(made_up[i]);
        options_calls_are_invalid(made_up[i]);
    }
    uintptr_t others[] = {(uintptr_t)locker, (uintptr_t)lock, (uintptr_t)cancel};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        status_readers_give_the_fallback(others[i]);
        options_calls_are_invalid(others[i]);
    }
    /* a status as options and options as a status */
    options_calls_are_invalid((uintptr_t)status);
    status_readers_give_the_fallback((uintptr_t)opts);
    /* and both as every other kind */
    uintptr_t mine[] = {(uintptr_t)status, (uintptr_t)opts};
    for (size_t i = 0; i < 2; i++) {
        turn_lock *got = NULL;
        EXPECT_RC(turn_lock_check((turn_lock *)mine[i]), TURN_ERR_INVALID_ARGUMENT);
        EXPECT_RC(turn_lock_release((turn_lock *)mine[i]), TURN_ERR_INVALID_ARGUMENT);
        EXPECT_RC(turn_cancel_fire((turn_cancel *)mine[i]), TURN_ERR_INVALID_ARGUMENT);
        EXPECT_RC(turn_lock_acquire((turn_locker *)mine[i], "c-handles", "x", 0, 0, 0, &got),
                  TURN_ERR_INVALID_ARGUMENT);
        turn_locker_free((turn_locker *)mine[i]);
        turn_cancel_free((turn_cancel *)mine[i]);
    }
    /* nothing was freed or changed by any of it */
    EXPECT(status && turn_status_len(status) == 1);
    EXPECT(status && strcmp(turn_status_label_at(status, 0), "mine") == 0);
    EXPECT_RC(turn_options_set_pool_size(opts, 3), TURN_OK);
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
    EXPECT_RC(turn_cancel_fire(cancel), TURN_OK);
    turn_status_free(status);
    turn_options_free(opts);
    locker_still_works(locker, "c-handles-other");
}

/* The attack: knowing the handle of my own lock, guess the handle of the
 * locks taken right after it (by this process, as by someone else sharing
 * it) by trying the next few ids with every check value, 2^20 tries on
 * 64-bit targets (2^12 on 32-bit ones, whose check has 8 bits). Every guess
 * must miss: the ids are not in sequence. */
#if UINTPTR_MAX > 0xffffffffu
#define ID_BITS 40
#define CHECK_SHIFT 46
#define GUESSED_IDS 4
#else
#define ID_BITS 20
#define CHECK_SHIFT 24
#define GUESSED_IDS 16
#endif
#define CHECKS ((uintptr_t)1 << (sizeof(uintptr_t) * CHAR_BIT - CHECK_SHIFT))

static void guessing_the_next_locks_finds_nothing(turn_locker *locker, turn_lock *lock,
                                                  turn_cancel *cancel) {
    (void)cancel;
    enum { VICTIMS = 4 };
    turn_lock *victims[VICTIMS] = {NULL};
    char resource[32];
    for (int i = 0; i < VICTIMS; i++) {
        snprintf(resource, sizeof resource, "c-victim-%d", i);
        EXPECT_RC(turn_lock_acquire(locker, resource, "victim", 0, 0, 5000, &victims[i]), TURN_OK);
    }
    uintptr_t mine = (uintptr_t)lock;
    uintptr_t id_mask = ((uintptr_t)1 << ID_BITS) - 1;
    uintptr_t middle = mine & ~id_mask & (((uintptr_t)1 << CHECK_SHIFT) - 1);
    unsigned long tries = 0, hits = 0;
    for (uintptr_t delta = 1; delta <= GUESSED_IDS; delta++) {
        uintptr_t id = (mine + delta) & id_mask;
        for (uintptr_t check = 0; check < CHECKS; check++) {
            uintptr_t guess = (check << CHECK_SHIFT) | middle | id;
            tries++;
            if (guess == mine) continue;
            if (turn_lock_serial((turn_lock *)guess) != 0) {
                if (hits++ < 4) fprintf(stderr, "guess %#lx names a live lock\n", (unsigned long)guess);
            }
        }
    }
    printf("guessing: %lu tries, %lu hits\n", tries, hits);
    EXPECT(hits == 0);
    for (int i = 0; i < VICTIMS; i++)
        if (victims[i]) EXPECT_RC(turn_lock_release(victims[i]), TURN_OK);
    EXPECT_RC(turn_lock_check(lock), TURN_OK);
}

/* In a child, a status and options made by the parent are still what they
 * were (the child has a copy of the parent's memory): pure data, not tied
 * to the parent's locker. */
static void in_a_forked_child_parent_status_and_options_still_work(turn_locker *locker,
                                                                   turn_lock *lock,
                                                                   turn_cancel *cancel) {
    (void)cancel;
    turn_status *status = a_status(locker, "parent");
    turn_options *opts = NULL;
    EXPECT_RC(turn_options_new(&opts), TURN_OK);
    EXPECT_RC(turn_options_set_prefix(opts, "c-forked"), TURN_OK);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        if (turn_status_len(status) != 1) bad |= 1;
        const char *label = turn_status_label_at(status, 0);
        if (!label || strcmp(label, "parent") != 0) bad |= 2;
        turn_locker *l = NULL;
        if (turn_locker_new_with_options(redis_url, opts, &l) != TURN_OK) bad |= 4;
        turn_lock *held = NULL;
        if (turn_lock_acquire(l, "c-forked", "child", 0, 0, 5000, &held) != TURN_OK) bad |= 8;
        if (turn_lock_release(held) != TURN_OK) bad |= 8;
        turn_locker_free(l);
        if (turn_lock_check(lock) != TURN_ERR_FORKED) bad |= 16;
        turn_status_free(status);
        turn_status_free(status);
        if (turn_status_len(status) != 0) bad |= 32;
        turn_options_free(opts);
        if (turn_options_set_pool_size(opts, 2) != TURN_ERR_INVALID_ARGUMENT) bad |= 64;
        _exit(bad);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        fprintf(stderr, "child checks failed: mask %d\n", WEXITSTATUS(st));
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* the child's frees were its own */
    EXPECT(turn_status_len(status) == 1);
    EXPECT_RC(turn_options_set_pool_size(opts, 2), TURN_OK);
    turn_status_free(status);
    turn_options_free(opts);
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
    {"a_status_freed_twice_or_read_after_free_gives_the_fallback",
     a_status_freed_twice_or_read_after_free_gives_the_fallback},
    {"options_freed_twice_then_used_are_invalid", options_freed_twice_then_used_are_invalid},
    {"made_up_or_other_kinds_as_status_or_options_are_invalid",
     made_up_or_other_kinds_as_status_or_options_are_invalid},
    {"guessing_the_next_locks_finds_nothing", guessing_the_next_locks_finds_nothing},
    {"in_a_forked_child_parent_status_and_options_still_work",
     in_a_forked_child_parent_status_and_options_still_work},
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
    redis_url = argv[1];
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
