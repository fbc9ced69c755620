/*
 * Signals through the C ABI: an interrupted system call is retried inside
 * the library and never reported.
 *
 *   signals REDIS_URL alarm SECONDS restart|norestart
 *   signals REDIS_URL stop SECONDS
 *
 * alarm: a SIGALRM handler is installed (with or without SA_RESTART) and a
 * signalling thread sends SIGALRM to every other thread of the process
 * (tgkill over /proc/self/task) every 200 us, from before the lockers are
 * made until after they are freed. Meanwhile four threads on two lockers
 * contend on one resource for SECONDS: turn_lock_acquire (or
 * turn_acquire_start, poll, turn_pending_finish), turn_lock_check,
 * turn_status_get, turn_lock_release. Any answer but TURN_OK is an error.
 *
 * stop: two child processes contend the same way (no signalling thread)
 * while the parent stops and continues each one (SIGSTOP, SIGCONT) again
 * and again for SECONDS; a child's exit status says whether it saw errors.
 *
 * Prints "signals: MODE: N cycles, 0 errors" when all went well.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "turn.h"
#include "check.h"


#define WORKERS 4
/* A lease short enough for several heartbeats in a run, long enough for
 * any stop the parent makes (at most 20 ms) and a loaded machine. */
#define EXPIRE_MS 3000
#define TIMEOUT_MS 30000
#define SHOWN 10

static const char *url;
static const char *resource;
static double seconds;

static atomic_long handled;   /* SIGALRMs handled */
static atomic_long cycles;    /* acquire-release cycles done */
static atomic_long errors;    /* answers other than TURN_OK */
static atomic_int stop_signalling;

static void on_alarm(int signo) {
    (void)signo;
    atomic_fetch_add(&handled, 1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_us(long us) {
    struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

static void error(int worker, const char *call, turn_result rc) {
    long n = atomic_fetch_add(&errors, 1);
    if (n < SHOWN) {
        fprintf(stderr, "worker %d: %s: %s (%s)\n", worker, call, turn_result_str(rc),
                turn_last_error());
    }
}

/* Sends SIGALRM to every thread of the process but this one, every 200 us. */
static void *signaller(void *arg) {
    (void)arg;
    pid_t pid = getpid();
    pid_t self = (pid_t)syscall(SYS_gettid);
    while (!atomic_load(&stop_signalling)) {
        DIR *d = opendir("/proc/self/task");
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.') continue;
                pid_t tid = (pid_t)atoi(e->d_name);
                if (tid != self) syscall(SYS_tgkill, pid, tid, SIGALRM);
            }
            closedir(d);
        }
        sleep_us(200);
    }
    return NULL;
}

struct worker {
    int id;
    turn_locker *locker;
};

/* Waits for a pending acquire's fd, then finishes it. */
static turn_result acquire_pending(turn_locker *locker, const char *label, turn_lock **out) {
    turn_pending *p = NULL;
    turn_result rc = turn_acquire_start(locker, resource, label, EXPIRE_MS, 0, TIMEOUT_MS, &p);
    if (rc != TURN_OK) return rc;
    for (;;) {
        struct pollfd w = { turn_pending_fd(p), POLLIN, 0 };
        if (poll(&w, 1, 1000) < 0 && errno != EINTR) {
            turn_pending_cancel(p);
            return TURN_ERR_CONNECTION;
        }
        rc = turn_pending_finish(p, out);
        if (rc != TURN_ERR_WOULD_BLOCK) return rc;
    }
}

static void *work(void *arg) {
    struct worker *w = arg;
    char label[32];
    snprintf(label, sizeof label, "worker %d", w->id);
    double end = now() + seconds;
    while (now() < end) {
        turn_lock *lock = NULL;
        turn_result rc = (w->id % 2)
            ? acquire_pending(w->locker, label, &lock)
            : turn_lock_acquire(w->locker, resource, label, EXPIRE_MS, 0, TIMEOUT_MS, &lock);
        if (rc != TURN_OK) {
            error(w->id, (w->id % 2) ? "pending acquire" : "turn_lock_acquire", rc);
            continue;
        }
        if ((rc = turn_lock_check(lock)) != TURN_OK) error(w->id, "turn_lock_check", rc);
        turn_status *status = NULL;
        if ((rc = turn_status_get(w->locker, resource, &status)) != TURN_OK) {
            error(w->id, "turn_status_get", rc);
        } else {
            if (turn_status_indicator(status) != turn_lock_serial(lock)) {
                error(w->id, "the indicator shows another ticket", TURN_ERR_PROTOCOL);
            }
            turn_status_free(status);
        }
        if ((rc = turn_lock_release(lock)) != TURN_OK) error(w->id, "turn_lock_release", rc);
        atomic_fetch_add(&cycles, 1);
    }
    return NULL;
}

/* Two lockers, two workers on each, for `seconds`; 0 when all went well. */
static int contend(void) {
    turn_locker *lockers[2] = { NULL, NULL };
    for (int i = 0; i < 2; i++) {
        turn_result rc = turn_locker_new(url, &lockers[i]);
        if (rc != TURN_OK) FAIL("turn_locker_new: %s (%s)", turn_result_str(rc), turn_last_error());
    }
    pthread_t threads[WORKERS];
    struct worker workers[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        workers[i].id = i;
        workers[i].locker = lockers[i / 2];
        if (pthread_create(&threads[i], NULL, work, &workers[i]) != 0) FAIL("pthread_create");
    }
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < 2; i++) turn_locker_free(lockers[i]);
    return 0;
}

static int alarm_mode(int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = restart ? SA_RESTART : 0;
    if (sigaction(SIGALRM, &sa, NULL) != 0) FAIL("sigaction");

    pthread_t sig;
    if (pthread_create(&sig, NULL, signaller, NULL) != 0) FAIL("pthread_create");
    int bad = contend();
    atomic_store(&stop_signalling, 1);
    pthread_join(sig, NULL);
    if (bad) return bad;

    const char *mode = restart ? "alarm with SA_RESTART" : "alarm without SA_RESTART";
    long n = atomic_load(&cycles), e = atomic_load(&errors), h = atomic_load(&handled);
    if (e != 0) FAIL("signals: %s: %ld cycles, %ld errors", mode, n, e);
    if (n < 10) FAIL("signals: %s: only %ld cycles", mode, n);
    if (h < 1000) FAIL("signals: %s: only %ld signals handled", mode, h);
    printf("signals: %s: %ld cycles, 0 errors, %ld signals handled\n", mode, n, h);
    return 0;
}

static int stop_mode(void) {
    enum { CHILDREN = 2 };
    pid_t pids[CHILDREN];
    int out[CHILDREN][2];
    for (int i = 0; i < CHILDREN; i++) {
        if (pipe(out[i]) != 0) FAIL("pipe");
        fflush(stdout);
        pids[i] = fork();
        if (pids[i] < 0) FAIL("fork");
        if (pids[i] == 0) {
            close(out[i][0]);
            int bad = contend();
            long n = atomic_load(&cycles), e = atomic_load(&errors);
            char line[64];
            int len = snprintf(line, sizeof line, "%ld %ld\n", n, e);
            if (write(out[i][1], line, (size_t)len) != len) bad = 1;
            exit(bad || e != 0 ? 1 : 0);
        }
        close(out[i][1]);
    }
    /* Stop and continue each child in turn, for about as long as they run. */
    srand(42);
    long stops = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < CHILDREN; i++) {
            kill(pids[i], SIGSTOP);
            sleep_us(1000 + rand() % 19000);
            kill(pids[i], SIGCONT);
            stops++;
            sleep_us(1000 + rand() % 9000);
        }
    }
    long total = 0;
    int bad = 0;
    for (int i = 0; i < CHILDREN; i++) {
        int st = 0;
        if (waitpid(pids[i], &st, 0) != pids[i]) FAIL("waitpid");
        char line[64] = { 0 };
        ssize_t got = read(out[i][0], line, sizeof line - 1);
        close(out[i][0]);
        long n = 0, e = -1;
        if (got <= 0 || sscanf(line, "%ld %ld", &n, &e) != 2) e = -1;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || e != 0) {
            fprintf(stderr, "signals: stop: child %d: exit %d, %ld cycles, %ld errors\n", i,
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1, n, e);
            bad = 1;
        }
        total += n;
    }
    if (bad) return 1;
    if (total < 10) FAIL("signals: stop: only %ld cycles", total);
    printf("signals: stop: %ld cycles, 0 errors, %ld stops\n", total, stops);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) FAIL("usage: %s REDIS_URL alarm|stop SECONDS [restart|norestart]", argv[0]);
    url = argv[1];
    seconds = atof(argv[3]);
    if (strcmp(argv[2], "alarm") == 0 && argc == 5) {
        int restart = strcmp(argv[4], "restart") == 0;
        resource = restart ? "c-signals-restart" : "c-signals-norestart";
        return alarm_mode(restart);
    }
    if (strcmp(argv[2], "stop") == 0) {
        resource = "c-signals-stop";
        return stop_mode();
    }
    FAIL("usage: %s REDIS_URL alarm|stop SECONDS [restart|norestart]", argv[0]);
}
