// turn.hpp's locker_options (prefix, timeouts, pool, grace, clock serials,
// TLS files, min replicas) and cancel_token: options reach the library (a
// prefix keeps queues apart, out-of-range values and missing TLS files are
// refused), and
// fire() from another thread ends a wait with TURN_ERR_CANCELED, leaving no
// ticket behind.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "turn.hpp"
#include "check.h"

static turn_result code_of(void (*f)(const std::string &), const std::string &url) {
    try {
        f(url);
    } catch (const turn::error &e) {
        return e.code();
    }
    return TURN_OK;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const std::string url = argv[1];
    using std::chrono::milliseconds;

    // Every option set: the locker works, under its own prefix.
    turn::locker_options o;
    o.prefix = "cpp-opts";
    o.connect_timeout = milliseconds(1500);
    o.command_timeout = milliseconds(3000);
    o.pool_size = 4;
    o.grace = milliseconds(300);
    o.clock_serials = true;
    o.min_replicas = turn::min_replicas{0, milliseconds(0)};  // off: one server has no replica
    turn::locker prefixed(url, o);
    turn::locker plain(url);
    {
        turn::lock l = prefixed.acquire("printer", "with options");
        EXPECT(l.held() && l.serial() > 1000000);  // clock serials
        auto mine = prefixed.get_status("printer");
        EXPECT(mine && mine->tickets.size() == 1 && mine->tickets[0].label == "with options");
        EXPECT(!plain.get_status("printer"));  // another prefix: another queue
    }

    // Values the library refuses come back as turn::error.
    EXPECT(code_of([](const std::string &u) {
               turn::locker_options bad;
               bad.pool_size = 5000;
               turn::locker l(u, bad);
           }, url) == TURN_ERR_INVALID_ARGUMENT);
    EXPECT(code_of([](const std::string &u) {
               turn::locker_options bad;
               bad.prefix = "a\nb";
               turn::locker l(u, bad);
           }, url) == TURN_ERR_INVALID_ARGUMENT);
    EXPECT(code_of([](const std::string &u) {
               turn::locker_options bad;
               bad.connect_timeout = milliseconds(-5);
               turn::locker l(u, bad);
           }, url) == TURN_ERR_INVALID_ARGUMENT);
    // Replica confirmation: a timeout of 0, or not below the command
    // timeout, is refused.
    EXPECT(code_of([](const std::string &u) {
               turn::locker_options bad;
               bad.min_replicas = turn::min_replicas{1, milliseconds(0)};
               turn::locker l(u, bad);
           }, url) == TURN_ERR_INVALID_ARGUMENT);
    EXPECT(code_of([](const std::string &u) {
               turn::locker_options bad;
               bad.command_timeout = milliseconds(1000);
               bad.min_replicas = turn::min_replicas{1, milliseconds(1000)};
               turn::locker l(u, bad);
           }, url) == TURN_ERR_INVALID_ARGUMENT);
    std::string why;
    try {
        turn::locker_options bad;
        bad.min_replicas = turn::min_replicas{1, milliseconds(0)};
        turn::locker l(url, bad);
    } catch (const turn::error &e) {
        why = e.what();
    }
    EXPECT(why.find("replica timeout") != std::string::npos);
    std::printf("replica timeout 0: %s\n", why.c_str());
    turn_result tls = code_of([](const std::string &u) {
        turn::locker_options t;
        t.tls_ca_file = "/nonexistent/turn-test-ca.pem";
        std::string secure = "rediss://" + u.substr(std::string("redis://").size());
        turn::locker l(secure, t);
    }, url);
    EXPECT(tls != TURN_OK);
    std::printf("missing TLS CA file: %s\n", turn_result_str(tls));

    // A cancel token fired from another thread ends the wait.
    turn::lock holder = plain.acquire("cpp-cancel", "holder");
    turn::cancel_token stop;
    turn_result waited = TURN_OK;
    std::thread waiter([&] {
        try {
            plain.acquire("cpp-cancel", "waiter", {turn::forever, {}, {}, &stop});
        } catch (const turn::error &e) {
            waited = e.code();
        }
    });
    bool queued = false;
    for (int i = 0; i < 3000 && !queued; i++) {
        auto s = plain.get_status("cpp-cancel");
        queued = s && s->tickets.size() == 2;
        if (!queued) std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT(queued);
    auto fired = std::chrono::steady_clock::now();
    stop.fire();
    waiter.join();
    auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - fired);
    EXPECT(waited == TURN_ERR_CANCELED);
    auto s = plain.get_status("cpp-cancel");
    EXPECT(s && s->tickets.size() == 1 && s->tickets[0].label == "holder");
    std::printf("cancel ended the wait after %lld ms\n", static_cast<long long>(took.count()));
    // Fired stays fired: a later wait with it ends at once.
    turn_result again = TURN_OK;
    try {
        plain.acquire("cpp-cancel", "late", {turn::forever, {}, {}, &stop});
    } catch (const turn::error &e) {
        again = e.code();
    }
    EXPECT(again == TURN_ERR_CANCELED);
    // A moved-from token is empty; the moved-to one still works.
    turn::cancel_token other;
    turn::cancel_token moved = std::move(other);
    EXPECT(moved.handle() != nullptr && other.handle() == nullptr);
    moved.fire();
    holder.release();

    if (failures) {
        std::printf("%d checks failed\n", failures);
        return 1;
    }
    std::printf("all checks passed\n");
    return 0;
}
