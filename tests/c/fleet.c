/*
 * A C client of the mixed fleet (tests/bindings.rs): takes the lock ROUNDS
 * times and appends "enter SERIAL LABEL" and "leave SERIAL LABEL" to
 * LOGFILE while it holds it.
 *
 *   fleet REDIS_URL RESOURCE LABEL ROUNDS LOGFILE
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "turn.h"

static void note(int fd, const char *what, unsigned long long serial, const char *label) {
    char line[256];
    int n = snprintf(line, sizeof line, "%s %llu %s\n", what, serial, label);
    if (n < 0 || n >= (int)sizeof line || write(fd, line, (size_t)n) != n) exit(3);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s REDIS_URL RESOURCE LABEL ROUNDS LOGFILE\n", argv[0]);
        return 2;
    }
    const char *resource = argv[2], *label = argv[3];
    int rounds = atoi(argv[4]);
    turn_locker *locker = NULL;
    if (turn_locker_new(argv[1], &locker) != TURN_OK) {
        fprintf(stderr, "locker: %s\n", turn_last_error());
        return 1;
    }
    int fd = open(argv[5], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return 1;
    for (int i = 0; i < rounds; i++) {
        turn_lock *lock = NULL;
        turn_result rc = turn_lock_acquire(locker, resource, label, 10000, 0, 60000, &lock);
        if (rc != TURN_OK) {
            fprintf(stderr, "acquire: %s %s\n", turn_result_str(rc), turn_last_error());
            return 1;
        }
        note(fd, "enter", (unsigned long long)turn_lock_serial(lock), label);
        struct timespec ts = {0, 2000000L};
        nanosleep(&ts, NULL);
        note(fd, "leave", (unsigned long long)turn_lock_serial(lock), label);
        if (turn_lock_release(lock) != TURN_OK) return 1;
    }
    close(fd);
    turn_locker_free(locker);
    return 0;
}
