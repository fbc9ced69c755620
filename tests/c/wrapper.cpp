// The C++ wrapper (turn.hpp): RAII release, moves, errors as exceptions
// with their codes, try_acquire, status, threads contending, and the
// shared modes (semaphore, shared and exclusive, acquire_all), the
// locker's metrics and each ticket's facts in a status.
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "turn.hpp"
#include "check.h"

template <class F>
static bool throws(turn_result code, F f) {
    try {
        f();
    } catch (const turn::error &e) {
        return e.code() == code;
    }
    return false;
}

static void shared_modes(turn::locker &locker, turn::locker &other) {
    // A semaphore of 2: two holders at once, a third would block; a
    // permit given back (by a destructor) is taken at once.
    {
        turn::lock a = locker.acquire_semaphore("cpp-sem", 2);
        {
            turn::lock b = locker.acquire_semaphore("cpp-sem", 2, 1, "b", {turn::no_wait});
            EXPECT(a.held() && b.held() && b.token() > a.token());
            EXPECT(throws(TURN_ERR_WOULD_BLOCK,
                          [&] { locker.acquire_semaphore("cpp-sem", 2, 1, "c", {turn::no_wait}); }));
        }
        turn::lock c = locker.acquire_semaphore("cpp-sem", 2, 1, "c", {turn::no_wait});
        EXPECT(c.held());
        EXPECT(throws(TURN_ERR_WRONG_KIND, [&] { locker.acquire_semaphore("cpp-sem", 3, 1, "", {turn::no_wait}); }));
        EXPECT(throws(TURN_ERR_WRONG_KIND, [&] { locker.acquire_shared("cpp-sem", "", {turn::no_wait}); }));
        EXPECT(throws(TURN_ERR_WRONG_KIND, [&] { locker.try_acquire("cpp-sem"); }));
    }
    EXPECT(throws(TURN_ERR_INVALID_ARGUMENT, [&] { locker.acquire_semaphore("cpp-sem", 0, 0); }));
    EXPECT(throws(TURN_ERR_INVALID_ARGUMENT, [&] { locker.acquire_semaphore("cpp-sem", 2, 3); }));
    turn::cancel_token stop;
    EXPECT(throws(TURN_ERR_INVALID_ARGUMENT,
                  [&] { locker.acquire_semaphore("cpp-sem", 2, 1, "", {turn::forever, {}, {}, &stop}); }));

    // Read-write: shared holders together, an exclusive one alone.
    {
        turn::lock r1 = locker.acquire_shared("cpp-rw", "reader 1");
        turn::lock r2 = locker.acquire_shared("cpp-rw", "reader 2", {turn::no_wait});
        EXPECT(r1.held() && r2.held());
        EXPECT(throws(TURN_ERR_WOULD_BLOCK, [&] { locker.acquire_exclusive("cpp-rw", "writer", {turn::no_wait}); }));
        EXPECT(throws(TURN_ERR_WRONG_KIND, [&] { locker.acquire_semaphore("cpp-rw", 2, 1, "", {turn::no_wait}); }));
    }
    {
        turn::lock w = locker.acquire_exclusive("cpp-rw", "writer");
        EXPECT(w.held());
        EXPECT(throws(TURN_ERR_WOULD_BLOCK, [&] { locker.acquire_shared("cpp-rw", "reader", {turn::no_wait}); }));
    }

    // All or none: the locks in the caller's order, each released by its
    // destructor; a busy resource times the call out with nothing kept.
    {
        std::vector<turn::lock> locks = locker.acquire_all({"cpp-all-b", "cpp-all-a"}, "both");
        EXPECT(locks.size() == 2 && locks[0].held() && locks[1].held());
        EXPECT(!other.try_acquire("cpp-all-a") && !other.try_acquire("cpp-all-b"));
        turn::lock b_again = std::move(locks[0]);
        locks.clear();  // cpp-all-a released
        EXPECT(other.try_acquire("cpp-all-a") && !other.try_acquire("cpp-all-b"));
    }
    {
        turn::lock busy = other.acquire("cpp-all-b", "busy");
        EXPECT(throws(TURN_ERR_TIMEOUT, [&] {
            locker.acquire_all({"cpp-all-a", "cpp-all-b"}, "both", {std::chrono::milliseconds(200)});
        }));
        EXPECT(other.try_acquire("cpp-all-a"));
        // A cancel token ends the wait the same way.
        turn::cancel_token stop_all;
        std::thread firing([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            stop_all.fire();
        });
        EXPECT(throws(TURN_ERR_CANCELED, [&] {
            locker.acquire_all({"cpp-all-a", "cpp-all-b"}, "both", {turn::forever, {}, {}, &stop_all});
        }));
        firing.join();
        EXPECT(other.try_acquire("cpp-all-a"));
    }
    auto a = locker.get_status("cpp-all-a");
    EXPECT(a && a->tickets.empty());
    EXPECT(throws(TURN_ERR_INVALID_ARGUMENT, [&] { locker.acquire_all({}); }));
    EXPECT(throws(TURN_ERR_INVALID_ARGUMENT, [&] { locker.acquire_all({"x", "x"}); }));
}

static void watching(const std::string &url) {
    turn::locker locker(url);
    std::string text = locker.metrics();
    EXPECT(text.find("# TYPE turn_acquires_total counter\n") != std::string::npos);
    EXPECT(text.find("turn_acquires_total{granted=\"at_once\"} 0\n") != std::string::npos);
    EXPECT(!text.empty() && text.back() == '\n' && text.find('\0') == std::string::npos);

    turn::lock held = locker.acquire("cpp-facts", "holder");
    turn::pending waiter = locker.acquire_start("cpp-facts", "waiter");
    auto s = locker.get_status("cpp-facts");
    EXPECT(s && s->kind == TURN_KIND_PLAIN && s->permits == 0 && s->tickets.size() == 2);
    if (s && s->tickets.size() == 2) {
        const turn::ticket &h = s->tickets[0], &w = s->tickets[1];
        EXPECT(h.held && h.ours && h.token == held.token() && h.position == 0);
        EXPECT(h.held_for && !h.waited_for && h.lease_left && h.lease_left->count() > 0);
        EXPECT(h.exclusive && h.weight == 1);
        EXPECT(!w.held && w.ours && w.token > held.token() && w.position == 1 && w.label == "waiter");
        EXPECT(w.waited_for && !w.held_for && w.lease_left);
    }
    held.release();
    waiter.cancel();
    text = locker.metrics();
    EXPECT(text.find("turn_acquires_total{granted=\"at_once\"} 1\n") != std::string::npos);
    EXPECT(text.find("turn_hold_seconds_count 1\n") != std::string::npos);

    turn::lock sem = locker.acquire_semaphore("cpp-facts-sem", 3, 2, "big");
    s = locker.get_status("cpp-facts-sem");
    EXPECT(s && s->kind == TURN_KIND_SEMAPHORE && s->permits == 3);
    EXPECT(s && s->tickets.size() == 1 && s->tickets[0].weight == 2 && !s->tickets[0].exclusive);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const std::string url = argv[1];
    turn::locker locker(url);
    turn::locker other(url);

    {
        turn::lock a = locker.acquire("cpp", "first");
        EXPECT(a && a.held() && a.serial() == 1);
        int fd = a.lost_fd();
        EXPECT(fd >= 0 && a.lost_fd() == fd);
        EXPECT(!locker.try_acquire("cpp", "second"));  // would block
        turn::lock moved = std::move(a);
        EXPECT(!a && moved.serial() == 1 && moved.token() > 1);
        EXPECT(a.lost_fd() == -1 && moved.lost_fd() == fd);
        auto s = locker.get_status("cpp");
        EXPECT(s && s->indicator == 1 && s->tickets.size() == 1 && s->tickets[0].label == "first");
    }  // released by the destructor
    {
        auto b = locker.try_acquire("cpp", "third");
        EXPECT(b && b->serial() == 3);
        b->release();
        EXPECT(!*b);
        bool threw = false;
        try { b->release(); } catch (const turn::error &e) { threw = e.code() == TURN_ERR_INVALID_ARGUMENT; }
        EXPECT(threw);
    }
    bool threw = false;
    try {
        turn::lock held = locker.acquire("cpp-timeout", "holder");
        locker.acquire("cpp-timeout", "waiter", {std::chrono::milliseconds(100)});
    } catch (const turn::error &e) {
        threw = e.code() == TURN_ERR_TIMEOUT && std::string(e.what()).find("TURN_ERR_TIMEOUT") != std::string::npos;
    }
    EXPECT(threw);
    threw = false;
    try { locker.acquire(""); } catch (const turn::error &e) { threw = e.code() == TURN_ERR_INVALID_ARGUMENT; }
    EXPECT(threw);
    threw = false;
    try { turn::locker bad("nonsense://"); } catch (const turn::error &e) { threw = e.code() == TURN_ERR_INVALID_ARGUMENT; }
    EXPECT(threw);
    EXPECT(!locker.get_status("cpp-none"));

    // Threads contending: no overlap, every turn taken.
    std::atomic<int> inside{0}, overlaps{0}, turns{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; t++) {
        threads.emplace_back([&] {
            for (int i = 0; i < 20; i++) {
                turn::lock l = locker.acquire("cpp-threads", "t");
                if (inside.fetch_add(1) != 0) overlaps++;
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                inside.fetch_sub(1);
                turns++;
            }
        });
    }
    for (auto &t : threads) t.join();
    EXPECT(overlaps == 0 && turns == 120);
    locker.reset("cpp-threads");

    shared_modes(locker, other);
    watching(url);

    if (failures) std::fprintf(stderr, "%d failure(s)\n", failures);
    else std::printf("c++ wrapper: all checks passed\n");
    return failures ? 1 : 0;
}
