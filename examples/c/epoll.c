/* One thread, one epoll loop, N waits: takes N tickets for one resource
 * with turn_acquire_start and serves them as their turns come, in ticket
 * order, without a thread per wait. Usage: epoll REDIS_URL [N]
 * (the README's "Event loops" section shows main). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "turn.h"

int main(int argc, char **argv) {
    turn_locker *locker;
    if (argc < 2 || turn_locker_new(argv[1], &locker) != TURN_OK) return 2;
    int n = argc > 2 ? atoi(argv[2]) : 10, left = n, ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < n; i++) {                      /* n tickets, drawn now */
        turn_pending *p;
        if (turn_acquire_start(locker, "printer", "job", 0, 0, 30000, &p) != TURN_OK) return 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
        epoll_ctl(ep, EPOLL_CTL_ADD, turn_pending_fd(p), &ev);
    }
    while (left > 0) {                                 /* this thread serves them all */
        struct epoll_event ev[16];
        int k = epoll_wait(ep, ev, 16, -1);
        for (int i = 0; i < k; i++) {
            turn_pending *p = ev[i].data.ptr;
            turn_lock *lock;
            epoll_ctl(ep, EPOLL_CTL_DEL, turn_pending_fd(p), NULL);  /* finish closes it */
            turn_result rc = turn_pending_finish(p, &lock);
            if (rc == TURN_ERR_WOULD_BLOCK) {                        /* not yet */
                epoll_ctl(ep, EPOLL_CTL_ADD, turn_pending_fd(p), &ev[i]);
                continue;
            }
            left--;
            if (rc != TURN_OK) { printf("not had: %s\n", turn_result_str(rc)); continue; }
            printf("ticket %llu: my turn\n", (unsigned long long)turn_lock_serial(lock));
            turn_lock_release(lock);                   /* the next ticket's fd fires */
        }
    }
    turn_locker_free(locker);
    return 0;
}
