// The C++ pending acquire (turn.hpp): locker::acquire_start, pending's fd,
// finish (std::nullopt while waiting, a lock, or turn::error), cancel,
// position, moves, and the destructor withdrawing the ticket. Served from
// one thread with poll(2), in ticket order. Also the pending forms of the
// shared modes.
#include <poll.h>

#include <cstdio>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include "turn.hpp"
#include "check.h"

static bool readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

template <class F>
static bool throws(turn_result code, F f) {
    try {
        f();
    } catch (const turn::error &e) {
        return e.code() == code;
    }
    return false;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    turn::locker locker(argv[1]);

    // Free: granted by the draw, readable at once.
    {
        turn::pending p = locker.acquire_start("cpp-pending", "free");
        EXPECT(p && p.fd() >= 0 && readable(p.fd(), 0));
        std::optional<turn::lock> lock = p.finish();
        EXPECT(lock && lock->serial() == 1 && !p && p.fd() == -1);
        EXPECT(throws(TURN_ERR_INVALID_ARGUMENT, [&] { p.finish(); }));
        EXPECT(throws(TURN_ERR_INVALID_ARGUMENT, [&] { p.cancel(); }));
        EXPECT(throws(TURN_ERR_INVALID_ARGUMENT, [&] { (void)p.position(); }));
    }

    // Ten pendings behind a holder, served from one thread in ticket order;
    // ticket 4 canceled, ticket 6 dropped by its destructor after its turn came.
    turn::lock holder = locker.acquire("cpp-pending", "holder");  // serial 2
    std::vector<turn::pending> waiting;
    for (int i = 0; i < 10; i++) {  // serials 3..12
        waiting.push_back(locker.acquire_start("cpp-pending", "waiter " + std::to_string(i)));
    }
    EXPECT(waiting[0].position() == 1 && waiting[9].position() == 10);
    EXPECT(!readable(waiting[0].fd(), 100));
    EXPECT(!waiting[0].finish() && waiting[0]);  // still waiting
    turn::pending moved = std::move(waiting[1]);
    EXPECT(!waiting[1] && moved && moved.position() == 2);
    waiting[1] = std::move(moved);
    waiting[1].cancel();  // serial 4 withdrawn
    EXPECT(!waiting[1]);
    holder.release();

    std::vector<std::uint64_t> served;
    size_t left = 8;  // ten, less the canceled one and the dropped one
    bool dropped = false;
    while (left > 0) {
        std::vector<struct pollfd> fds;
        std::vector<size_t> index;
        for (size_t i = 0; i < waiting.size(); i++) {
            if (waiting[i]) {
                fds.push_back({waiting[i].fd(), POLLIN, 0});
                index.push_back(i);
            }
        }
        int n = poll(fds.data(), fds.size(), 30000);
        EXPECT(n > 0);
        if (n <= 0) break;
        for (size_t k = 0; k < fds.size(); k++) {
            if (!(fds[k].revents & POLLIN)) continue;
            turn::pending &p = waiting[index[k]];
            if (index[k] == 3 && !dropped) {
                // Its turn came: dropping it hands the turn on.
                dropped = true;
                p = turn::pending();
                continue;
            }
            std::optional<turn::lock> lock = p.finish();
            EXPECT(lock && lock->held());
            if (lock) {
                served.push_back(lock->serial());
                lock->release();
            }
            left--;
        }
    }
    const std::vector<std::uint64_t> expected = {3, 5, 7, 8, 9, 10, 11, 12};
    EXPECT(served == expected);
    EXPECT(dropped);
    // A pending canceled while the notifier stepped it is withdrawn as that
    // step ends (canceling never waits on a round trip).
    std::optional<turn::status> s;
    for (int i = 0; i < 3000; i++) {
        s = locker.get_status("cpp-pending");
        if (s && s->tickets.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT(s && s->tickets.empty() && s->indicator == 13);

    // A timeout ends the wait with turn::error, leaving only the holder.
    {
        turn::lock held = locker.acquire("cpp-pending-timeout", "holder");
        turn::pending p = locker.acquire_start("cpp-pending-timeout", "patient",
                                               {std::chrono::milliseconds(100)});
        EXPECT(readable(p.fd(), 30000));
        EXPECT(throws(TURN_ERR_TIMEOUT, [&] { p.finish(); }));
        EXPECT(!p);
        // The notifier withdraws the ticket right after (finish never
        // waits on a round trip).
        bool withdrawn = false;
        for (int i = 0; i < 3000 && !withdrawn; i++) {
            auto t = locker.get_status("cpp-pending-timeout");
            withdrawn = t && t->tickets.size() == 1;
            if (!withdrawn) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        EXPECT(withdrawn);
    }

    // The shared modes' pending forms: a semaphore ticket that fits is
    // granted by its draw; a writer waits for the reader, and a reader
    // drawn after the writer waits for it.
    {
        turn::pending s = locker.semaphore_start("cpp-pending-sem", 2, 2, "all of it");
        EXPECT(readable(s.fd(), 0));
        std::optional<turn::lock> all = s.finish();
        EXPECT(all && all->held());
        turn::pending more = locker.semaphore_start("cpp-pending-sem", 2, 1, "one more");
        EXPECT(!more.finish() && more);
        all->release();
        EXPECT(readable(more.fd(), 30000));
        std::optional<turn::lock> one = more.finish();
        EXPECT(one && one->held());

        turn::lock reader = locker.acquire_shared("cpp-pending-rw", "reader");
        turn::pending writer = locker.exclusive_start("cpp-pending-rw", "writer");
        turn::pending late = locker.shared_start("cpp-pending-rw", "late reader");
        EXPECT(!writer.finish() && !late.finish());
        reader.release();
        EXPECT(readable(writer.fd(), 30000));
        std::optional<turn::lock> w = writer.finish();
        EXPECT(w && w->held() && !late.finish());
        w->release();
        EXPECT(readable(late.fd(), 30000));
        std::optional<turn::lock> r = late.finish();
        EXPECT(r && r->held());
        EXPECT(throws(TURN_ERR_INVALID_ARGUMENT,
                      [&] { locker.shared_start("cpp-pending-rw", "", {turn::no_wait}); }));
    }

    // Refused: a try-lock timeout, a cancel token, an empty resource.
    EXPECT(throws(TURN_ERR_INVALID_ARGUMENT,
                  [&] { locker.acquire_start("cpp-pending", "", {turn::no_wait}); }));
    turn::cancel_token stop;
    EXPECT(throws(TURN_ERR_INVALID_ARGUMENT,
                  [&] { locker.acquire_start("cpp-pending", "", {turn::forever, {}, {}, &stop}); }));
    EXPECT(throws(TURN_ERR_INVALID_ARGUMENT, [&] { locker.acquire_start(""); }));

    if (failures) return 1;
    std::printf("pending (C++): served %zu in order, all checks passed\n", served.size());
    return 0;
}
