// The C++ wrapper (turn.hpp): RAII release, moves, errors as exceptions
// with their codes, try_acquire, status, and threads contending.
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "turn.hpp"
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const std::string url = argv[1];
    turn::locker locker(url);

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

    if (failures) std::fprintf(stderr, "%d failure(s)\n", failures);
    else std::printf("c++ wrapper: all checks passed\n");
    return failures ? 1 : 0;
}
