/*
 * The log callback through the C ABI: a lock held with a 1.5 s lease on a
 * server that asks for a password, the server stalled 0.9 s (DEBUG SLEEP,
 * sent on a connection of its own) until a beat is slow: the heartbeat's
 * warning comes to the callback, at TURN_LOG_WARN, without a trailing
 * newline and without the password. The callback calls the library back
 * (turn_locker_health, turn_set_log_callback) without a deadlock. The test
 * that runs this program checks that it wrote nothing on standard error
 * (failures are printed on standard output for that reason).
 *
 *   log REDIS_URL_WITH_PASSWORD PORT PASSWORD
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "turn.h"

#define FAIL(...) do { printf("log: "); printf(__VA_ARGS__); putchar('\n'); return 1; } while (0)

struct seen {
    pthread_mutex_t mutex;
    turn_locker *locker; /* asked for its health from within the callback */
    int messages;
    int warnings;        /* at TURN_LOG_WARN or worse */
    int bad_level;
    int with_password;
    int with_newline;
    int health_in_callback; /* turn_locker_health's answer from the callback, -1 before */
    int set_in_callback;    /* turn_set_log_callback's answer from the callback, -1 before */
    const char *password;
    char first_warning[1024];
};

static void collect(void *context, int level, const char *message) {
    struct seen *s = context;
    pthread_mutex_lock(&s->mutex);
    s->messages++;
    if (level < TURN_LOG_ERROR || level > TURN_LOG_DEBUG) s->bad_level++;
    if (strstr(message, s->password)) s->with_password++;
    size_t n = strlen(message);
    if (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r')) s->with_newline++;
    if (level <= TURN_LOG_WARN && s->warnings++ == 0) {
        snprintf(s->first_warning, sizeof s->first_warning, "%s", message);
        /* Back into the library from its heartbeat thread. */
        if (s->locker) s->health_in_callback = turn_locker_health(s->locker);
        s->set_in_callback = turn_set_log_callback(collect, context);
    }
    pthread_mutex_unlock(&s->mutex);
}

static int warnings(struct seen *s) {
    pthread_mutex_lock(&s->mutex);
    int n = s->warnings;
    pthread_mutex_unlock(&s->mutex);
    return n;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sends a RESP command of argc arguments and reads one line of reply into
 * reply (a simple string or an error). 0 on success. */
static int command(int fd, int argc, const char **argv, char *reply, size_t size) {
    char buf[512];
    int len = snprintf(buf, sizeof buf, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        len += snprintf(buf + len, sizeof buf - len, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    if (len >= (int)sizeof buf || write(fd, buf, len) != len) return -1;
    size_t got = 0;
    while (got + 1 < size) {
        ssize_t r = read(fd, reply + got, 1);
        if (r != 1) return -1;
        if (reply[got++] == '\n') break;
    }
    reply[got] = '\0';
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) FAIL("usage: %s REDIS_URL_WITH_PASSWORD PORT PASSWORD", argv[0]);
    struct seen s = {.mutex = PTHREAD_MUTEX_INITIALIZER, .health_in_callback = -1,
                     .set_in_callback = -1, .password = argv[3]};
    if (turn_set_log_callback(collect, &s) != TURN_OK) FAIL("turn_set_log_callback");

    turn_locker *locker = NULL;
    if (turn_locker_new(argv[1], &locker) != TURN_OK) FAIL("locker: %s", turn_last_error());
    turn_lock *lock = NULL;
    if (turn_lock_acquire(locker, "c-log", "held", 1500, 0, 10000, &lock) != TURN_OK)
        FAIL("acquire: %s", turn_last_error());
    pthread_mutex_lock(&s.mutex);
    s.locker = locker;
    pthread_mutex_unlock(&s.mutex);

    /* The stall, on a connection of its own. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) FAIL("connect");
    char reply[256];
    const char *auth[] = {"AUTH", argv[3]};
    if (command(fd, 2, auth, reply, sizeof reply) != 0 || strncmp(reply, "+OK", 3) != 0)
        FAIL("AUTH: %s", reply);
    /* A beat slower than a third of the lease (500 ms) needs the stall to
     * begin less than 400 ms after the beat it delays: stall again until
     * one was. Beats come every 500 ms: the pause between two stalls is not
     * a multiple of that, so that a stall that missed is followed by one
     * that does not. The first beat comes 500 ms after the acquire: the
     * first stall begins half-way to it. */
    usleep(250000);
    int stalls = 0;
    while (warnings(&s) == 0 && stalls < 8) {
        const char *stall[] = {"DEBUG", "SLEEP", "0.9"};
        if (command(fd, 3, stall, reply, sizeof reply) != 0 || strncmp(reply, "+OK", 3) != 0)
            FAIL("DEBUG SLEEP: %s", reply);
        stalls++;
        double until = now_ms() + 1750;
        while (warnings(&s) == 0 && now_ms() < until) usleep(10000);
    }
    close(fd);

    pthread_mutex_lock(&s.mutex);
    s.locker = NULL;
    struct seen got = s;
    pthread_mutex_unlock(&s.mutex);
    if (got.warnings == 0) FAIL("no warning after %d stalls (%d messages)", stalls, got.messages);
    printf("log: %d stall(s), %d message(s); first warning: %s\n", stalls, got.messages,
           got.first_warning);
    if (got.bad_level) FAIL("%d message(s) with a level out of range", got.bad_level);
    if (got.with_password) FAIL("%d message(s) with the password", got.with_password);
    if (got.with_newline) FAIL("%d message(s) ending in a newline", got.with_newline);
    if (!strstr(got.first_warning, "heartbeat is too slow")) FAIL("not the slow beat's warning");
    if (got.health_in_callback != TURN_ERR_CONNECTION)
        FAIL("turn_locker_health from the callback: %d", got.health_in_callback);
    if (got.set_in_callback != TURN_OK) FAIL("turn_set_log_callback from the callback");
    if (turn_locker_health(locker) != TURN_ERR_CONNECTION) FAIL("health does not report the slow beat");

    /* The lease is 1.5 s and no stall lasted longer than 0.9 s. */
    turn_result rc = turn_lock_release(lock);
    if (rc != TURN_OK) FAIL("release: %s", turn_result_str(rc));
    turn_locker_free(locker);
    /* Standard error again; when this returns, collect is not running. */
    if (turn_set_log_callback(NULL, NULL) != TURN_OK) FAIL("turn_set_log_callback(NULL)");
    pthread_mutex_destroy(&s.mutex);
    printf("log: all checks passed\n");
    return 0;
}
