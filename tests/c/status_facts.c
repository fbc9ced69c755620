/*
 * The facts of a status through the C ABI: the kind, each ticket's
 * holding or waiting, place, age, lease left, token and weight; the
 * fallbacks for a bad index or handle.
 *
 *   status_facts REDIS_URL
 */
#include <stdint.h>
#include <unistd.h>

#include "turn.h"
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 2) FAIL("usage: status_facts REDIS_URL");
    turn_locker *locker = NULL;
    EXPECT_RC(turn_locker_new(argv[1], &locker), TURN_OK);
    if (!locker) return 1;
    turn_lock *held = NULL;
    EXPECT_RC(turn_semaphore_acquire(locker, "pool", "big", 3, 2, 5000, 0, -1, &held), TURN_OK);
    turn_pending *waiting = NULL;
    EXPECT_RC(turn_semaphore_start(locker, "pool", "bigger", 3, 3, 0, 0, -1, &waiting), TURN_OK);
    usleep(200 * 1000);

    turn_status *st = NULL;
    EXPECT_RC(turn_status_get(locker, "pool", &st), TURN_OK);
    EXPECT(turn_status_kind(st) == TURN_KIND_SEMAPHORE);
    EXPECT(turn_status_permits(st) == 3);
    EXPECT(turn_status_len(st) == 2);
    uint64_t token = 0;
    EXPECT_RC(turn_lock_token(held, &token), TURN_OK);
    EXPECT(turn_status_held_at(st, 0) == 1);
    EXPECT(turn_status_weight_at(st, 0) == 2);
    EXPECT(turn_status_exclusive_at(st, 0) == 0);
    EXPECT(turn_status_ours_at(st, 0) == 1);
    EXPECT(turn_status_token_at(st, 0) == token);
    EXPECT(turn_status_age_ms_at(st, 0) >= 200);
    EXPECT(turn_status_lease_left_ms_at(st, 0) > 0 && turn_status_lease_left_ms_at(st, 0) <= 5000);
    EXPECT(turn_status_position_at(st, 0) == 0);
    EXPECT(turn_status_held_at(st, 1) == 0);
    EXPECT(turn_status_weight_at(st, 1) == 3);
    EXPECT(turn_status_position_at(st, 1) == 1);
    EXPECT(turn_status_age_ms_at(st, 1) >= 200);
    EXPECT(turn_status_token_at(st, 1) > token);
    /* Out of range, and a bad handle: the fallbacks. */
    EXPECT(turn_status_held_at(st, 2) == -1);
    EXPECT(turn_status_age_ms_at(st, 9) == -1);
    EXPECT(turn_status_position_at(st, 9) == 0);
    EXPECT(turn_status_kind(NULL) == -1);
    EXPECT(turn_status_permits(NULL) == 0);
    turn_status_free(st);
    EXPECT(turn_status_kind(st) == -1);

    EXPECT_RC(turn_pending_cancel(waiting), TURN_OK);
    EXPECT_RC(turn_lock_release(held), TURN_OK);
    turn_locker_free(locker);
    if (failures) return 1;
    printf("status facts: all checks passed\n");
    return 0;
}
