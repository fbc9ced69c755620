/*
 * A holder paused past its lease (SIGSTOP, then SIGCONT) through the C ABI:
 * the queue moves on to a waiter with a greater serial; the paused holder's
 * turn_lock_check and turn_lock_release answer TURN_ERR_LOST, and its
 * release does not move the indicator.
 *
 *   paused REDIS_URL
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "turn.h"
#include "check.h"


static int holder(const char *url, int to_parent, int from_parent) {
    turn_locker *locker = NULL;
    turn_lock *lock = NULL;
    if (turn_locker_new(url, &locker) != TURN_OK) return 10;
    if (turn_lock_acquire(locker, "c-paused", "paused holder", 300, 0, 10000, &lock) != TURN_OK) return 11;
    char go = 'h';
    if (write(to_parent, &go, 1) != 1) return 12;
    if (read(from_parent, &go, 1) != 1) return 13; /* after SIGCONT */
    int bad = 0;
    if (turn_lock_check(lock) != TURN_ERR_LOST) bad |= 1;
    if (turn_lock_release(lock) != TURN_ERR_LOST) bad |= 2;
    turn_locker_free(locker);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 2) FAIL("usage: %s REDIS_URL", argv[0]);
    int up[2], down[2];
    if (pipe(up) || pipe(down)) FAIL("pipe");
    pid_t pid = fork();
    if (pid == 0) _exit(holder(argv[1], up[1], down[0]));
    char c;
    if (read(up[0], &c, 1) != 1) FAIL("holder did not take the lock");
    kill(pid, SIGSTOP);

    turn_locker *locker = NULL;
    turn_lock *lock = NULL;
    if (turn_locker_new(argv[1], &locker) != TURN_OK) FAIL("locker: %s", turn_last_error());
    /* patience 60 s: only the paused holder's lapsed lease lets this in */
    turn_result rc = turn_lock_acquire(locker, "c-paused", "next", 0, 60000, 30000, &lock);
    if (rc != TURN_OK) FAIL("waiter: %s %s", turn_result_str(rc), turn_last_error());
    uint64_t serial = turn_lock_serial(lock);
    if (serial != 2) FAIL("waiter got serial %llu", (unsigned long long)serial);

    kill(pid, SIGCONT);
    if (write(down[1], "g", 1) != 1) FAIL("write");
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) FAIL("paused holder saw %d (1: check not lost, 2: release not lost)", WEXITSTATUS(st));

    turn_status *status = NULL;
    if (turn_status_get(locker, "c-paused", &status) != TURN_OK) FAIL("status");
    uint64_t ind = turn_status_indicator(status);
    turn_status_free(status);
    if (ind != 2) FAIL("indicator moved to %llu by the late release", (unsigned long long)ind);
    if (turn_lock_check(lock) != TURN_OK) FAIL("new holder lost its lock");
    if (turn_lock_release(lock) != TURN_OK) FAIL("release");
    turn_locker_free(locker);
    printf("paused: late holder lost its lock, queue moved on to serial 2\n");
    return 0;
}
