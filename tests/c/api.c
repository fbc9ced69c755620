/*
 * The C ABI, call by call: results, out-parameters, bad input of every
 * kind, try-lock, timeout, status, bump, reset, lost locks and fork.
 *
 *   api REDIS_URL REDIS_PORT DEAD_URL
 *
 * Keys are tampered with through redis-cli on REDIS_PORT; DEAD_URL names a
 * port nothing listens on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "turn.h"
#include "check.h"

static const char *port;

static void cli(const char *args) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "redis-cli -p %s %s >/dev/null", port, args);
    if (system(cmd) != 0) {
        fprintf(stderr, "redis-cli failed: %s\n", args);
        failures++;
    }
}

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void result_names(void) {
    EXPECT(strcmp(turn_result_str(TURN_OK), "TURN_OK") == 0);
    EXPECT(strcmp(turn_result_str(TURN_ERR_LOST), "TURN_ERR_LOST") == 0);
    EXPECT(strcmp(turn_result_str(TURN_ERR_PANIC), "TURN_ERR_PANIC") == 0);
    EXPECT(strcmp(turn_result_str((turn_result)42), "TURN_ERR_UNKNOWN") == 0);
    EXPECT(TURN_ERR_NULL_ARGUMENT == 1 && TURN_ERR_PROTOCOL == 10 && TURN_ERR_PANIC == 99);
    EXPECT(strlen(turn_version()) > 0);
    EXPECT(turn_last_error() != NULL);
}

static void bad_input(turn_locker *locker) {
    turn_lock *lock = NULL;
    turn_status *status = NULL;
    turn_locker *other = NULL;
    char *huge = malloc(1024 * 1024 + 1);
    memset(huge, 'x', 1024 * 1024);
    huge[1024 * 1024] = '\0';

    EXPECT_RC(turn_locker_new(NULL, NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT(strstr(turn_last_error(), "out") != NULL);
    EXPECT_RC(turn_locker_new("\xff\xfe", &other), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_locker_new("ftp://x", &other), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_locker_new(huge, &other), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(other == NULL); /* out-parameters are written only on success */

    EXPECT_RC(turn_lock_acquire(NULL, "r", "l", 0, 0, -1, &lock), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, NULL, "l", 0, 0, -1, &lock), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, "r", "l", 0, 0, -1, NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, "", "l", 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, "\xc3\x28", "l", 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(turn_last_error(), "UTF-8") != NULL);
    EXPECT_RC(turn_lock_acquire(locker, "r", "\xc3\x28", 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, "a\nb", "l", 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, "a\x1b[31m", "l", 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, huge, "l", 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, "r", huge, 0, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_acquire(locker, "r", "l", 1, 0, -1, &lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(lock == NULL);

    EXPECT_RC(turn_lock_release(NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_lock_check(NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT(turn_lock_serial(NULL) == 0);
    EXPECT_RC(turn_status_get(NULL, "r", &status), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_status_get(locker, NULL, &status), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_status_get(locker, "r", NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_status_get(locker, huge, &status), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(status == NULL);
    EXPECT(turn_status_indicator(NULL) == 0 && turn_status_dispenser(NULL) == 0);
    EXPECT(turn_status_len(NULL) == 0 && turn_status_serial_at(NULL, 0) == 0);
    EXPECT(turn_status_label_at(NULL, 0) == NULL);
    EXPECT_RC(turn_bump(NULL, "r", NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_bump(locker, "\xff", NULL), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_reset(NULL, "r"), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_reset(locker, NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_reset(locker, ""), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_announce(NULL, "r", "x"), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_announce(locker, "r", NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_announce(locker, "", "x"), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_announce(locker, "r", "two\nlines"), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_announce(locker, "r", huge), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_announce(locker, "r", "7 crashed!"), TURN_OK);

    turn_options *opts = NULL;
    EXPECT_RC(turn_options_new(NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_options_new(&opts), TURN_OK);
    EXPECT_RC(turn_options_set_prefix(opts, ""), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_prefix(opts, NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_options_set_pool_size(opts, 0), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_connect_timeout_ms(opts, 0), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_options_set_prefix(NULL, "x"), TURN_ERR_NULL_ARGUMENT);
    turn_options_free(opts);

    turn_locker_free(NULL);
    turn_status_free(NULL);
    turn_options_free(NULL);
    free(huge);
}

static void locking(turn_locker *locker, const char *url) {
    turn_lock *a = NULL, *b = NULL;
    turn_status *status = NULL;
    uint64_t ind = 0;

    EXPECT_RC(turn_lock_acquire(locker, "c-res", "holder", 0, 0, -1, &a), TURN_OK);
    EXPECT(a != NULL && turn_lock_serial(a) == 1);
    EXPECT_RC(turn_lock_check(a), TURN_OK);

    /* try-lock and timeout, through a second locker */
    turn_locker *second = NULL;
    EXPECT_RC(turn_locker_new(url, &second), TURN_OK);
    EXPECT_RC(turn_lock_acquire(second, "c-res", "try", 0, 0, 0, &b), TURN_ERR_WOULD_BLOCK);
    EXPECT_RC(turn_lock_acquire(second, "c-res", "wait", 0, 0, 200, &b), TURN_ERR_TIMEOUT);
    EXPECT(b == NULL);

    EXPECT_RC(turn_status_get(locker, "c-res", &status), TURN_OK);
    EXPECT(turn_status_indicator(status) == 1);
    EXPECT(turn_status_dispenser(status) == 3);
    EXPECT(turn_status_len(status) == 1); /* withdrawn tickets leave no trace */
    EXPECT(turn_status_serial_at(status, 0) == 1);
    EXPECT(strcmp(turn_status_label_at(status, 0), "holder") == 0);
    EXPECT(turn_status_label_at(status, 1) == NULL);
    EXPECT(turn_status_serial_at(status, 99) == 0);
    turn_status_free(status);
    status = NULL;
    EXPECT_RC(turn_status_get(locker, "no-such-queue", &status), TURN_ERR_NOT_FOUND);
    EXPECT(status == NULL);

    EXPECT_RC(turn_reset(locker, "c-res"), TURN_ERR_BUSY);
    EXPECT_RC(turn_bump(locker, "c-res", &ind), TURN_OK);
    EXPECT(ind == 1); /* a live holder is never bumped */
    EXPECT_RC(turn_lock_release(a), TURN_OK);
    EXPECT_RC(turn_bump(locker, "c-res", &ind), TURN_OK);
    EXPECT(ind == 4); /* past the withdrawn 2 and 3 */
    EXPECT_RC(turn_reset(locker, "c-res"), TURN_OK);
    EXPECT_RC(turn_reset(locker, "c-res"), TURN_ERR_NOT_FOUND);

    /* a lock whose presence key is deleted by hand is reported lost */
    EXPECT_RC(turn_lock_acquire(second, "c-lost", "x", 300, 0, -1, &b), TURN_OK);
    cli("DEL turn:c-lost:serial:1");
    turn_result rc = TURN_OK;
    for (int i = 0; i < 500 && rc == TURN_OK; i++) {
        pause_ms(10);
        rc = turn_lock_check(b);
    }
    EXPECT(rc == TURN_ERR_LOST);
    EXPECT_RC(turn_lock_release(b), TURN_ERR_LOST);

    /* a lock held when its locker is freed is released then */
    EXPECT_RC(turn_lock_acquire(second, "c-free", "x", 0, 0, -1, &b), TURN_OK);
    turn_locker_free(second);
    EXPECT_RC(turn_lock_check(b), TURN_ERR_LOST);
    EXPECT_RC(turn_lock_release(b), TURN_ERR_LOST);
    EXPECT_RC(turn_lock_acquire(locker, "c-free", "y", 0, 0, 0, &a), TURN_OK);
    EXPECT_RC(turn_lock_release(a), TURN_OK);

    /* wrong-shaped data from someone else */
    cli("SET turn:c-bad:indicator notanumber");
    cli("SET turn:c-bad:dispenser 3");
    EXPECT_RC(turn_lock_acquire(locker, "c-bad", "x", 0, 0, 0, &a), TURN_ERR_PROTOCOL);
    EXPECT_RC(turn_status_get(locker, "c-bad", &status), TURN_ERR_PROTOCOL);
}

static void handles_and_extremes(const char *url) {
    turn_locker *locker = NULL;
    turn_lock *lock = NULL;
    turn_status *status = NULL;
    EXPECT_RC(turn_locker_new(url, &locker), TURN_OK);

    /* double release, use after release, made-up handles */
    EXPECT_RC(turn_lock_acquire(locker, "c-handles", "x", 0, 0, -1, &lock), TURN_OK);
    EXPECT_RC(turn_lock_release(lock), TURN_OK);
    EXPECT_RC(turn_lock_release(lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_check(lock), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(turn_lock_serial(lock) == 0);
    int on_stack = 0;
    EXPECT_RC(turn_lock_release((turn_lock *)&on_stack), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_check((turn_lock *)(uintptr_t)0x12345), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_reset((turn_locker *)&on_stack, "x"), TURN_ERR_INVALID_ARGUMENT);

    /* extremes of expire, patience and timeout */
    EXPECT_RC(turn_lock_acquire(locker, "c-ext", "x", UINT32_MAX, UINT32_MAX, INT64_MAX, &lock), TURN_OK);
    turn_lock *other = NULL;
    EXPECT_RC(turn_lock_acquire(locker, "c-ext", "y", 100, UINT32_MAX, 150, &other), TURN_ERR_TIMEOUT);
    EXPECT_RC(turn_lock_acquire(locker, "c-ext", "y", 99, 0, 0, &other), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_release(lock), TURN_OK);
    EXPECT_RC(turn_lock_acquire(locker, "c-ext", "z", 0, 1, INT64_MIN, &lock), TURN_OK);
    EXPECT_RC(turn_lock_release(lock), TURN_OK);

    /* labels keep control characters; names may hold globs and colons */
    EXPECT_RC(turn_lock_acquire(locker, "c:glob*[x]?", "a\x01b\tc", 0, 0, 0, &lock), TURN_OK);
    EXPECT_RC(turn_status_get(locker, "c:glob*[x]?", &status), TURN_OK);
    EXPECT(status && strcmp(turn_status_label_at(status, 0), "a\x01b\tc") == 0);
    turn_status_free(status);
    EXPECT_RC(turn_lock_release(lock), TURN_OK);

    /* a locker used after free: an error, and free twice is a no-op */
    EXPECT_RC(turn_lock_acquire(locker, "c-uaf", "x", 0, 0, -1, &lock), TURN_OK);
    turn_locker_free(locker);
    turn_locker_free(locker);
    EXPECT_RC(turn_lock_acquire(locker, "c-uaf", "x", 0, 0, 0, &other), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_status_get(locker, "c-uaf", &status), TURN_ERR_INVALID_ARGUMENT);
    EXPECT_RC(turn_lock_check(lock), TURN_ERR_LOST);
    EXPECT_RC(turn_lock_release(lock), TURN_ERR_LOST);
}

static void forked(turn_locker *locker, const char *url) {
    pid_t pid = fork();
    if (pid == 0) {
        turn_lock *lock = NULL;
        turn_locker *mine = NULL;
        int bad = 0;
        if (turn_lock_acquire(locker, "c-fork", "child", 0, 0, 0, &lock) != TURN_ERR_FORKED) bad++;
        if (turn_locker_new(url, &mine) != TURN_OK) bad++;
        if (turn_lock_acquire(mine, "c-fork", "child", 0, 0, 5000, &lock) != TURN_OK) bad++;
        if (lock && turn_lock_release(lock) != TURN_OK) bad++;
        turn_locker_free(mine);
        turn_locker_free(locker); /* the parent's: returns at once, frees nothing */
        _exit(bad);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    turn_lock *lock = NULL;
    EXPECT_RC(turn_lock_acquire(locker, "c-fork", "parent", 0, 0, 5000, &lock), TURN_OK);
    EXPECT_RC(turn_lock_release(lock), TURN_OK);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s REDIS_URL REDIS_PORT DEAD_URL\n", argv[0]);
        return 2;
    }
    port = argv[2];
    turn_locker *locker = NULL;
    result_names();
    EXPECT_RC(turn_locker_new(argv[1], &locker), TURN_OK);
    if (!locker) return 1;
    bad_input(locker);
    locking(locker, argv[1]);
    forked(locker, argv[1]);
    turn_locker_free(locker);
    handles_and_extremes(argv[1]);

    /* a dead server (a free port nothing listens on, from the harness):
     * a connection error within the connect timeout */
    turn_locker *dead = NULL;
    EXPECT_RC(turn_locker_new(argv[3], &dead), TURN_ERR_CONNECTION);
    EXPECT(dead == NULL);

    if (failures) fprintf(stderr, "%d failure(s)\n", failures);
    else printf("api: all checks passed\n");
    return failures ? 1 : 0;
}
