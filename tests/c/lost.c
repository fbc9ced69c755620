/*
 * The lost fd through the C ABI, watched with epoll: -1 for bad handles;
 * one close-on-exec fd per lock; quiet while the lock is held (five leases
 * pass); readable once the presence key is deleted behind the holder's
 * back (the key's name is passed in: the program deletes it with DEL via
 * the redis-cli given), and readable after the locker is freed.
 *
 *   lost REDIS_URL REDIS_CLI PORT
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "turn.h"
#include "check.h"


/* Waits up to ms for fd to be readable, through a fresh epoll instance. */
static int readable(int fd, int ms) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) { close(ep); return -1; }
    struct epoll_event got;
    int n = epoll_wait(ep, &got, 1, ms);
    close(ep);
    return n == 1 && (got.events & EPOLLIN);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 4) FAIL("usage: %s REDIS_URL REDIS_CLI PORT", argv[0]);
    if (turn_lock_lost_fd(NULL) != -1) FAIL("NULL gave an fd");
    if (turn_lock_lost_fd((const turn_lock *)(uintptr_t)12345) != -1) FAIL("a made-up handle gave an fd");

    turn_locker *locker = NULL;
    turn_lock *lock = NULL;
    if (turn_locker_new(argv[1], &locker) != TURN_OK) FAIL("locker: %s", turn_last_error());
    if (turn_lock_acquire(locker, "c-lost", "held", 1500, 0, 10000, &lock) != TURN_OK) FAIL("acquire: %s", turn_last_error());
    int fd = turn_lock_lost_fd(lock);
    if (fd < 0) FAIL("no lost fd: %s", turn_last_error());
    if (turn_lock_lost_fd(lock) != fd) FAIL("a second fd");
    if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) FAIL("not close-on-exec");
    /* three leases, renewed every 500 ms */
    if (readable(fd, 4500) != 0) FAIL("readable while held");
    if (turn_lock_check(lock) != TURN_OK) FAIL("check while held");
    if (turn_lock_release(lock) != TURN_OK) FAIL("release");
    if (turn_lock_lost_fd(lock) != -1) FAIL("a released lock gave an fd");

    /* Lost behind its back: the presence key deleted. */
    if (turn_lock_acquire(locker, "c-lost", "victim", 3000, 0, 10000, &lock) != TURN_OK) FAIL("acquire 2");
    fd = turn_lock_lost_fd(lock);
    if (fd < 0 || readable(fd, 0) != 0) FAIL("fresh fd %d readable", fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -p %s DEL turn:c-lost:serial:%llu >/dev/null", argv[2], argv[3],
             (unsigned long long)turn_lock_serial(lock));
    double t0 = now_ms();
    if (system(cmd) != 0) FAIL("%s failed", cmd);
    if (readable(fd, 30000) != 1) FAIL("not readable after the DEL");
    printf("lost: fd readable %.0f ms after the DEL (beat 1000 ms)\n", now_ms() - t0);
    if (readable(fd, 0) != 1) FAIL("not level-triggered");
    if (turn_lock_check(lock) != TURN_ERR_LOST) FAIL("check not lost");
    if (turn_lock_release(lock) != TURN_ERR_LOST) FAIL("release not lost");

    /* The locker freed under a held lock. */
    if (turn_lock_acquire(locker, "c-lost", "orphan", 0, 0, 10000, &lock) != TURN_OK) FAIL("acquire 3");
    fd = turn_lock_lost_fd(lock);
    turn_locker_free(locker);
    if (readable(fd, 10000) != 1) FAIL("not readable after the locker was freed");
    if (turn_lock_release(lock) != TURN_ERR_LOST) FAIL("release after free not lost");
    printf("lost: all checks passed\n");
    return 0;
}
