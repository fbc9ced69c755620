/*
 * Mutual exclusion and FIFO order across processes: WORKERS processes, each
 * with its own locker, take the lock ROUNDS times and append "enter" and
 * "leave" lines with their ticket to a shared file. The parent checks that
 * enters and leaves alternate and that tickets only increase.
 *
 *   exclusion REDIS_URL FILE WORKERS ROUNDS
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "turn.h"

static void note(int fd, const char *what, unsigned long long serial) {
    char line[64];
    int n = snprintf(line, sizeof line, "%s %llu %d\n", what, serial, (int)getpid());
    if (write(fd, line, (size_t)n) != n) _exit(3);
}

static int worker(const char *url, const char *path, int rounds) {
    turn_locker *locker = NULL;
    if (turn_locker_new(url, &locker) != TURN_OK) return 1;
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0) return 1;
    for (int i = 0; i < rounds; i++) {
        turn_lock *lock = NULL;
        turn_result rc = turn_lock_acquire(locker, "c-exclusion", "worker", 0, 0, 60000, &lock);
        if (rc != TURN_OK) {
            fprintf(stderr, "acquire: %s %s\n", turn_result_str(rc), turn_last_error());
            return 1;
        }
        note(fd, "enter", turn_lock_serial(lock));
        struct timespec ts = {0, 2000000L};
        nanosleep(&ts, NULL);
        note(fd, "leave", turn_lock_serial(lock));
        if (turn_lock_release(lock) != TURN_OK) return 1;
    }
    close(fd);
    turn_locker_free(locker);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s REDIS_URL FILE WORKERS ROUNDS\n", argv[0]);
        return 2;
    }
    int workers = atoi(argv[3]), rounds = atoi(argv[4]);
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 2;
    close(fd);
    for (int w = 0; w < workers; w++) {
        if (fork() == 0) _exit(worker(argv[1], argv[2], rounds));
    }
    int bad = 0;
    for (int w = 0; w < workers; w++) {
        int st = 0;
        wait(&st);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) return 2;
    char what[16];
    unsigned long long serial, last = 0;
    int pid, inside = 0, lines = 0;
    while (fscanf(f, "%15s %llu %d", what, &serial, &pid) == 3) {
        lines++;
        if (strcmp(what, "enter") == 0) {
            if (inside) { fprintf(stderr, "overlap at ticket %llu\n", serial); bad++; }
            if (serial <= last) { fprintf(stderr, "ticket %llu after %llu\n", serial, last); bad++; }
            inside = 1;
            last = serial;
        } else {
            if (!inside || serial != last) { fprintf(stderr, "stray leave %llu\n", serial); bad++; }
            inside = 0;
        }
    }
    fclose(f);
    if (lines != 2 * workers * rounds) {
        fprintf(stderr, "%d lines, expected %d\n", lines, 2 * workers * rounds);
        bad++;
    }
    if (!bad) printf("exclusion: %d processes x %d rounds, no overlap, tickets in order\n", workers, rounds);
    return bad ? 1 : 0;
}
