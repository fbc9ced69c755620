/*
 * demo: one worker of a fleet taking turns on one resource.
 *
 *   demo REDIS_URL RESOURCE NAME ROUNDS
 *
 * Each round takes the lock, shows its ticket number and its fencing token
 * (turn_lock_token: it never goes back, while the ticket number starts over
 * when the queue is made anew), works a moment and gives the turn back.
 * Start several at once and watch them take turns in ticket order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "turn.h"

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int fail(const char *what, turn_result rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, turn_result_str(rc), turn_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s REDIS_URL RESOURCE NAME ROUNDS\n", argv[0]);
        return 2;
    }
    const char *url = argv[1], *resource = argv[2], *name = argv[3];
    int rounds = atoi(argv[4]);

    turn_locker *locker = NULL;
    turn_result rc = turn_locker_new(url, &locker);
    if (rc != TURN_OK) return fail("turn_locker_new", rc);

    for (int i = 1; i <= rounds; i++) {
        turn_lock *lock = NULL;
        /* default lease (10 s) and patience; wait at most 60 s */
        rc = turn_lock_acquire(locker, resource, name, 0, 0, 60000, &lock);
        if (rc != TURN_OK) {
            turn_locker_free(locker);
            return fail("turn_lock_acquire", rc);
        }
        uint64_t token = 0;
        rc = turn_lock_token(lock, &token);
        if (rc != TURN_OK) {
            turn_lock_release(lock);
            turn_locker_free(locker);
            return fail("turn_lock_token", rc);
        }
        printf("%-10s round %d: my turn, ticket %llu, fencing token %llu\n", name, i,
               (unsigned long long)turn_lock_serial(lock), (unsigned long long)token);
        fflush(stdout);
        pause_ms(100); /* the careful work on the shared resource */
        rc = turn_lock_check(lock);
        printf("%-10s round %d: done with ticket %llu (%s)\n", name, i,
               (unsigned long long)turn_lock_serial(lock), turn_result_str(rc));
        fflush(stdout);
        rc = turn_lock_release(lock); /* frees the handle */
        if (rc != TURN_OK) {
            turn_locker_free(locker);
            return fail("turn_lock_release", rc);
        }
    }
    turn_locker_free(locker);
    return 0;
}
