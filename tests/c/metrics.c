/*
 * turn_locker_metrics through the C ABI: the size asked with a NULL
 * buffer, a buffer too small refused and left alone, the text with a
 * lock's acquire counted, and bad arguments.
 *
 *   metrics REDIS_URL
 */
#include <stdlib.h>
#include <string.h>

#include "turn.h"
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 2) FAIL("usage: metrics REDIS_URL");
    turn_locker *locker = NULL;
    EXPECT_RC(turn_locker_new(argv[1], &locker), TURN_OK);
    if (!locker) return 1;
    turn_lock *lock = NULL;
    EXPECT_RC(turn_lock_acquire(locker, "printer", "job", 0, 0, -1, &lock), TURN_OK);
    EXPECT_RC(turn_lock_release(lock), TURN_OK);

    size_t needed = 0;
    EXPECT_RC(turn_locker_metrics(locker, NULL, 0, &needed), TURN_OK);
    EXPECT(needed > 100);
    char small[8];
    memset(small, 'x', sizeof small);
    size_t again = 0;
    EXPECT_RC(turn_locker_metrics(locker, small, sizeof small, &again), TURN_ERR_INVALID_ARGUMENT);
    EXPECT(again == needed);
    EXPECT(small[0] == 'x');
    char *text = malloc(needed);
    if (!text) FAIL("out of memory");
    EXPECT_RC(turn_locker_metrics(locker, text, needed, NULL), TURN_OK);
    EXPECT(strlen(text) + 1 == needed);
    EXPECT(strstr(text, "turn_acquires_total{granted=\"at_once\"} 1\n") != NULL);
    EXPECT(strstr(text, "# TYPE turn_wait_seconds histogram\n") != NULL);
    free(text);

    EXPECT_RC(turn_locker_metrics(locker, NULL, 0, NULL), TURN_ERR_NULL_ARGUMENT);
    EXPECT_RC(turn_locker_metrics(NULL, NULL, 0, &needed), TURN_ERR_NULL_ARGUMENT);
    turn_locker_free(locker);
    EXPECT_RC(turn_locker_metrics(locker, NULL, 0, &needed), TURN_ERR_INVALID_ARGUMENT);
    if (failures) return 1;
    printf("metrics: all checks passed\n");
    return 0;
}
