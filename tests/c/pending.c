/*
 * Pending acquires through the C ABI, served from one epoll thread: a
 * holder takes the resource, 200 pending acquires queue behind it (one
 * locker, no thread per pending: the process keeps its main thread and the
 * locker's two), then the loop finishes each pending as its fd turns
 * readable, checks that the turns come in ticket order, and releases. Also:
 * the argument and handle checks, a position, a cancel, a timeout.
 *
 *   pending REDIS_URL
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "turn.h"
#include "check.h"

#define N 200

/* The entries of a /proc directory: this process's threads or open
 * descriptors. */
static int entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n;
}

static int threads(void) { return entries("/proc/self/task"); }

/* Open descriptors other than sockets: the pendings' timerfds and pipes
 * (the locker's connection pool grows and shrinks on its own). */
static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len < 0) continue; /* the directory's own descriptor, closed */
        target[len] = '\0';
        if (strncmp(target, "socket:", 7) != 0) n++;
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    if (argc != 2) FAIL("usage: %s REDIS_URL", argv[0]);
    turn_locker *locker = NULL, *other = NULL;
    if (turn_locker_new(argv[1], &locker) != TURN_OK) FAIL("locker: %s", turn_last_error());
    if (turn_locker_new(argv[1], &other) != TURN_OK) FAIL("other locker: %s", turn_last_error());

    /* Misuse. */
    turn_pending *p = NULL;
    if (turn_acquire_start(locker, "c-pending", "x", 0, 0, 0, &p) != TURN_ERR_INVALID_ARGUMENT) FAIL("timeout 0 accepted");
    if (turn_acquire_start(locker, "", "x", 0, 0, -1, &p) != TURN_ERR_INVALID_ARGUMENT) FAIL("empty resource accepted");
    if (turn_acquire_start(locker, "c-pending", "x", 0, 0, -1, NULL) != TURN_ERR_NULL_ARGUMENT) FAIL("NULL out accepted");
    if (turn_pending_fd(NULL) != -1) FAIL("NULL gave an fd");
    if (turn_pending_fd((const turn_pending *)(uintptr_t)12345) != -1) FAIL("a made-up handle gave an fd");
    if (turn_pending_fd((const turn_pending *)locker) != -1) FAIL("a locker gave a pending fd");
    if (turn_pending_cancel((turn_pending *)locker) != TURN_ERR_INVALID_ARGUMENT) FAIL("a locker canceled as a pending");

    /* The holder, then N pending acquires behind it, all on one thread. */
    turn_lock *holder = NULL;
    if (turn_lock_acquire(other, "c-pending", "holder", 0, 0, -1, &holder) != TURN_OK) FAIL("holder: %s", turn_last_error());
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) FAIL("epoll");
    turn_pending *pend[N];
    for (int i = 0; i < N; i++) {
        char label[32];
        snprintf(label, sizeof label, "pending %d", i);
        if (turn_acquire_start(locker, "c-pending", label, 0, 0, -1, &pend[i]) != TURN_OK) FAIL("start %d: %s", i, turn_last_error());
        int fd = turn_pending_fd(pend[i]);
        if (fd < 0) FAIL("no fd for %d", i);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) FAIL("epoll_ctl %d", i);
    }
    uint64_t ahead = 0;
    if (turn_pending_position(pend[2], &ahead) != TURN_OK) FAIL("position: %s", turn_last_error());
    if (ahead != 3) FAIL("pending 2 has %llu ahead, not 3 (the holder and two)", (unsigned long long)ahead);
    turn_lock *early = NULL;
    if (turn_pending_finish(pend[0], &early) != TURN_ERR_WOULD_BLOCK) FAIL("finished while the holder holds");
    if (turn_lock_release((turn_lock *)pend[0]) != TURN_ERR_INVALID_ARGUMENT) FAIL("a pending released as a lock");
    if (turn_pending_finish((turn_pending *)holder, &early) != TURN_ERR_INVALID_ARGUMENT) FAIL("a lock finished as a pending");
    if (turn_pending_finish((turn_pending *)((uintptr_t)pend[0] ^ 0x10000), &early) != TURN_ERR_INVALID_ARGUMENT) FAIL("a made-up pending finished");
    /* A forked child cannot use its parent's pendings. */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        turn_lock *l = NULL;
        turn_pending *n = NULL;
        uint64_t a = 0;
        int ok = turn_pending_finish(pend[1], &l) == TURN_ERR_FORKED
            && turn_pending_position(pend[1], &a) == TURN_ERR_FORKED
            && turn_pending_cancel(pend[1]) == TURN_ERR_FORKED
            && turn_pending_fd(pend[1]) == -1
            && turn_acquire_start(locker, "c-pending", "child", 0, 0, -1, &n) == TURN_ERR_FORKED;
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    if (child < 0 || waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) FAIL("a forked child used its parent's pending");
    int t = threads();
    printf("pending: %d pending acquires, %d threads in the process\n", N, t);
    if (t != 1 + 3 + 3) FAIL("%d threads: want the main thread and three per locker", t);

    /* Served in order from this one thread. */
    if (turn_lock_release(holder) != TURN_OK) FAIL("release holder: %s", turn_last_error());
    uint64_t last = 0;
    int served = 0;
    while (served < N) {
        struct epoll_event evs[16];
        int n = epoll_wait(ep, evs, 16, 30000);
        if (n <= 0) FAIL("nothing readable within 30 s after %d served", served);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            turn_lock *lock = NULL;
            turn_result r = turn_pending_finish(pend[i], &lock);
            if (r == TURN_ERR_WOULD_BLOCK) FAIL("readable but still waiting (%d)", i);
            if (r != TURN_OK) FAIL("finish %d: %s", i, turn_last_error());
            if (i != served) FAIL("pending %d served as number %d", i, served);
            uint64_t serial = turn_lock_serial(lock);
            if (serial <= last) FAIL("serial %llu after %llu", (unsigned long long)serial, (unsigned long long)last);
            last = serial;
            if (turn_pending_fd(pend[i]) != -1) FAIL("a finished pending still has an fd");
            if (turn_lock_release(lock) != TURN_OK) FAIL("release %d: %s", i, turn_last_error());
            served++;
        }
    }
    close(ep);

    /* A cancel withdraws: the one behind it is served. */
    if (turn_lock_acquire(other, "c-pending", "holder", 0, 0, -1, &holder) != TURN_OK) FAIL("holder 2: %s", turn_last_error());
    turn_pending *gone = NULL, *next = NULL;
    if (turn_acquire_start(locker, "c-pending", "canceled", 0, 0, -1, &gone) != TURN_OK) FAIL("start gone");
    if (turn_acquire_start(locker, "c-pending", "next", 0, 0, -1, &next) != TURN_OK) FAIL("start next");
    if (turn_pending_cancel(gone) != TURN_OK) FAIL("cancel: %s", turn_last_error());
    if (turn_pending_cancel(gone) != TURN_ERR_INVALID_ARGUMENT) FAIL("canceled twice");
    if (turn_lock_release(holder) != TURN_OK) FAIL("release holder 2");
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, turn_pending_fd(next), &ev);
    if (epoll_wait(ep, &ev, 1, 30000) != 1) FAIL("the one behind the canceled one was not served");
    turn_lock *lock = NULL;
    if (turn_pending_finish(next, &lock) != TURN_OK) FAIL("finish next: %s", turn_last_error());
    close(ep);

    /* A timeout ends a pending with TURN_ERR_TIMEOUT. */
    turn_pending *late = NULL;
    if (turn_acquire_start(other, "c-pending", "late", 0, 0, 200, &late) != TURN_OK) FAIL("start late");
    ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_ctl(ep, EPOLL_CTL_ADD, turn_pending_fd(late), &ev);
    if (epoll_wait(ep, &ev, 1, 30000) != 1) FAIL("the timeout did not make the fd readable");
    turn_lock *never = NULL;
    if (turn_pending_finish(late, &never) != TURN_ERR_TIMEOUT) FAIL("not a timeout: %s", turn_last_error());
    close(ep);
    if (turn_lock_release(lock) != TURN_OK) FAIL("release next");

    /* No descriptor leaks: a hundred pendings started and ended, by
     * finish, cancel and timeout. */
    int fds_before = open_fds();
    for (int i = 0; i < 100; i++) {
        turn_pending *a = NULL, *b = NULL;
        if (turn_acquire_start(locker, "c-pending-fds", "a", 0, 0, -1, &a) != TURN_OK) FAIL("start a");
        if (turn_acquire_start(locker, "c-pending-fds", "b", 0, 0, 50, &b) != TURN_OK) FAIL("start b");
        /* Its turn comes at once, or right after the previous round's
         * ticket given up is withdrawn. */
        ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ea = {.events = EPOLLIN};
        epoll_ctl(ep, EPOLL_CTL_ADD, turn_pending_fd(a), &ea);
        if (epoll_wait(ep, &ea, 1, 30000) != 1) FAIL("a's turn never came");
        close(ep);
        turn_lock *la = NULL;
        if (turn_pending_finish(a, &la) != TURN_OK) FAIL("finish a: %s", turn_last_error());
        if (i % 2 == 0) {
            if (turn_pending_cancel(b) != TURN_OK) FAIL("cancel b: %s", turn_last_error());
        } else {
            ep = epoll_create1(EPOLL_CLOEXEC);
            struct epoll_event eb = {.events = EPOLLIN};
            epoll_ctl(ep, EPOLL_CTL_ADD, turn_pending_fd(b), &eb);
            if (epoll_wait(ep, &eb, 1, 30000) != 1) FAIL("b's timeout never came");
            close(ep);
            turn_lock *lb = NULL;
            if (turn_pending_finish(b, &lb) != TURN_ERR_TIMEOUT) FAIL("b: %s", turn_last_error());
        }
        if (turn_lock_release(la) != TURN_OK) FAIL("release a");
    }
    /* the notifier withdraws the last timed-out pending and closes its fd
       on its own time: look again for up to 10 s */
    int fds_after = open_fds();
    for (int i = 0; i < 100 && fds_after > fds_before; i++) {
        usleep(100 * 1000);
        fds_after = open_fds();
    }
    printf("pending: %d open descriptors before 100 cycles, %d after\n", fds_before, fds_after);
    if (fds_after > fds_before) FAIL("descriptors leaked: %d -> %d", fds_before, fds_after);

    turn_locker_free(locker);
    turn_locker_free(other);
    printf("pending: all checks passed\n");
    return 0;
}
