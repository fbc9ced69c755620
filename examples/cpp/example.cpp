// turn from C++: threads of one process take turns on one resource through
// the RAII wrapper in turn.hpp.
//
//   example REDIS_URL [THREADS] [ROUNDS]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "turn.hpp"

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s REDIS_URL [THREADS] [ROUNDS]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? std::atoi(argv[2]) : 4;
    int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
    try {
        turn::locker locker(argv[1]);
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; t++) {
            workers.emplace_back([&locker, t, rounds] {
                for (int i = 0; i < rounds; i++) {
                    turn::lock lock = locker.acquire("cpp-printer", "thread " + std::to_string(t));
                    std::printf("thread %d: my turn, ticket %llu, fencing token %llu\n", t,
                                static_cast<unsigned long long>(lock.serial()),
                                static_cast<unsigned long long>(lock.token()));
                }  // released here
            });
        }
        for (auto &w : workers) w.join();
        auto status = locker.get_status("cpp-printer");
        std::printf("indicator now %llu\n", status ? static_cast<unsigned long long>(status->indicator) : 0ULL);
    } catch (const turn::error &e) {
        std::fprintf(stderr, "%s (code %d)\n", e.what(), static_cast<int>(e.code()));
        return 1;
    }
    return 0;
}
