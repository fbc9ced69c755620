/*
 * turn.hpp: a header-only C++17 wrapper over the turn C API (turn.h).
 *
 *   turn::locker locker("redis://127.0.0.1:6379/0");
 *   {
 *       turn::lock lock = locker.acquire("printer", "report job");
 *       use(lock.token());           // a fencing token
 *   }                                // released here
 *
 * Errors are thrown as turn::error, which carries the turn_result code.
 * A turn::locker may be shared between threads (its calls are thread-safe);
 * a turn::lock is move-only and releases in its destructor.
 *
 * Settings of a locker (key prefix, timeouts, TLS files, ...) go in a
 * turn::locker_options; a turn::cancel_token named in acquire_options ends
 * a wait from another thread:
 *
 *   turn::locker_options o;
 *   o.prefix = "myapp";
 *   o.connect_timeout = std::chrono::seconds(1);
 *   turn::locker locker("rediss://redis.example:6380/0", o);
 *   turn::cancel_token stop;
 *   // elsewhere: stop.fire();  -> acquire throws TURN_ERR_CANCELED
 *   turn::lock lock = locker.acquire("printer", "job", {turn::forever, {}, {}, &stop});
 *
 * For an event loop, locker.acquire_start() takes a ticket and returns a
 * turn::pending at once (no thread waits); poll its fd(), then finish():
 *
 *   turn::pending p = locker.acquire_start("printer", "job");
 *   struct pollfd watch = {p.fd(), POLLIN, 0};
 *   poll(&watch, 1, -1);                  // or epoll, libuv, asio...
 *   if (std::optional<turn::lock> lock = p.finish()) use(lock->token());
 *
 * The shared modes give ordinary turn::locks: a semaphore's permits, a
 * read-write lock's share, plain locks on several resources at once:
 *
 *   turn::lock job = locker.acquire_semaphore("encoder", 4);     // 1 of 4 permits
 *   turn::lock reader = locker.acquire_shared("catalog");        // acquire_exclusive: a writer
 *   std::vector<turn::lock> both = locker.acquire_all({"ledger", "audit"});
 */
#ifndef TURN_HPP
#define TURN_HPP

#if (defined(_MSVC_LANG) ? _MSVC_LANG : __cplusplus) < 201703L
#error "turn.hpp needs C++17 or later (std::optional, std::string_view): compile with -std=c++17; from C or an older C++, include turn.h"
#else

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "turn.h"

namespace turn {

/// A failed call: what() has the call, the code's name and the detail.
class error : public std::runtime_error {
public:
    error(turn_result code, const std::string &what) : std::runtime_error(what), code_(code) {}
    /// The turn_result of the failed call.
    turn_result code() const noexcept { return code_; }

private:
    turn_result code_;
};

namespace detail {
inline void check(turn_result rc, const char *call) {
    if (rc != TURN_OK) {
        throw error(rc, std::string(call) + ": " + turn_result_str(rc) + ": " + turn_last_error());
    }
}
}  // namespace detail

/// Wait as long as it takes (the default timeout of acquire).
inline constexpr std::chrono::milliseconds forever{-1};
/// Try once, without waiting.
inline constexpr std::chrono::milliseconds no_wait{0};

/// Ends waits from another thread (turn_cancel): name it in
/// acquire_options::cancel, and fire() from any thread ends every wait
/// using it, now and later, with turn::error TURN_ERR_CANCELED (the ticket
/// withdrawn). Move-only; fire() is thread-safe. Keep it alive while an
/// acquire uses it.
class cancel_token {
public:
    cancel_token() { detail::check(turn_cancel_new(&handle_), "turn_cancel_new"); }
    cancel_token(const cancel_token &) = delete;
    cancel_token &operator=(const cancel_token &) = delete;
    cancel_token(cancel_token &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    cancel_token &operator=(cancel_token &&other) noexcept {
        if (this != &other) {
            turn_cancel_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    ~cancel_token() { turn_cancel_free(handle_); }

    /// Cancels every wait using this token, now and later.
    void fire() { detail::check(turn_cancel_fire(handle_), "turn_cancel_fire"); }
    /// The C handle (owned by this object).
    turn_cancel *handle() const noexcept { return handle_; }

private:
    turn_cancel *handle_ = nullptr;
};

class pending;

/// One held lock; releases in its destructor. Move-only.
class lock {
public:
    lock() noexcept = default;
    lock(const lock &) = delete;
    lock &operator=(const lock &) = delete;
    lock(lock &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    lock &operator=(lock &&other) noexcept {
        if (this != &other) {
            drop();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    ~lock() { drop(); }

    /// True while this object owns a lock (not moved from, not released).
    explicit operator bool() const noexcept { return handle_ != nullptr; }
    /// The ticket number (turn 1.0's; it starts over with the queue). 0 when empty.
    std::uint64_t serial() const noexcept { return turn_lock_serial(handle_); }
    /// The fencing token: greater than every earlier lock's on this resource,
    /// also across a Redis restart. 0 when empty.
    std::uint64_t token() const noexcept {
        std::uint64_t t = 0;
        return handle_ && turn_lock_token(handle_, &t) == TURN_OK ? t : 0;
    }
    /// True while held (no round trip).
    bool held() const noexcept { return handle_ && turn_lock_check(handle_) == TURN_OK; }
    /// Throws turn::error (TURN_ERR_LOST) once the lock is lost.
    void check() const { detail::check(turn_lock_check(handle_), "turn_lock_check"); }
    /// A file descriptor that becomes readable once the lock is known lost
    /// (see turn_lock_lost_fd): watch it with poll/epoll or your event loop,
    /// never read or close it. It stays readable once lost, never turns
    /// readable for a lock held normally, and is closed when this object
    /// releases the lock: take it out of your poll set first. -1 when empty.
    int lost_fd() const noexcept { return handle_ ? turn_lock_lost_fd(handle_) : -1; }
    /// Gives the turn back now; throws turn::error (TURN_ERR_LOST) when the
    /// lock had been lost. The object is empty afterwards either way.
    void release() {
        turn_lock *h = std::exchange(handle_, nullptr);
        if (!h) throw error(TURN_ERR_INVALID_ARGUMENT, "turn::lock::release: no lock held");
        detail::check(turn_lock_release(h), "turn_lock_release");
    }
    /// The C handle (owned by this object).
    turn_lock *handle() const noexcept { return handle_; }

private:
    friend class locker;
    friend class pending;
    explicit lock(turn_lock *h) noexcept : handle_(h) {}
    void drop() noexcept {
        if (handle_) turn_lock_release(std::exchange(handle_, nullptr));
    }
    turn_lock *handle_ = nullptr;
};

/// An acquire in progress that no thread waits in (turn_pending), from
/// locker::acquire_start: its ticket is drawn, its wait goes on in the
/// locker's notifier thread, and fd() becomes readable once the outcome is
/// known; finish() takes it. Move-only; its destructor withdraws the ticket
/// (as cancel()) unless the outcome was taken. Use it from one thread at a
/// time.
class pending {
public:
    pending() noexcept = default;
    pending(const pending &) = delete;
    pending &operator=(const pending &) = delete;
    pending(pending &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    pending &operator=(pending &&other) noexcept {
        if (this != &other) {
            drop();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    ~pending() { drop(); }

    /// True while this object owns a pending acquire (not moved from, not
    /// finished with an outcome, not canceled).
    explicit operator bool() const noexcept { return handle_ != nullptr; }
    /// A file descriptor that becomes readable once the outcome is known
    /// (level-triggered; see turn_pending_fd): watch it, never read or
    /// close it. It is closed when the pending ends (an outcome taken by
    /// finish(), cancel(), the destructor): take it out of your poll set
    /// first. -1 when empty.
    int fd() const noexcept { return handle_ ? turn_pending_fd(handle_) : -1; }
    /// std::nullopt while still waiting (the object stays as it is).
    /// Otherwise the outcome, after which the object is empty: the held
    /// lock, or turn::error with why not (TURN_ERR_TIMEOUT,
    /// TURN_ERR_CONNECTION, TURN_ERR_CANCELED when the locker was freed,
    /// ...), as locker::try_acquire answers std::nullopt for
    /// TURN_ERR_WOULD_BLOCK and throws the rest.
    std::optional<lock> finish() {
        if (!handle_) throw error(TURN_ERR_INVALID_ARGUMENT, "turn::pending::finish: no pending acquire");
        turn_lock *h = nullptr;
        turn_result rc = turn_pending_finish(handle_, &h);
        if (rc == TURN_ERR_WOULD_BLOCK) return std::nullopt;
        handle_ = nullptr;  // ended, whatever the outcome
        detail::check(rc, "turn_pending_finish");
        return lock(h);
    }
    /// Withdraws the ticket now (no trace, no stall for those behind; a
    /// turn that came meanwhile is handed on): one round trip. The object
    /// is empty afterwards; throws turn::error (TURN_ERR_CONNECTION) when
    /// Redis could not be told (the ticket's lease then runs out by itself).
    void cancel() {
        turn_pending *h = std::exchange(handle_, nullptr);
        if (!h) throw error(TURN_ERR_INVALID_ARGUMENT, "turn::pending::cancel: no pending acquire");
        detail::check(turn_pending_cancel(h), "turn_pending_cancel");
    }
    /// Tickets ahead of this one (the holder included) as last read, for
    /// progress displays (see turn_pending_position); 0 once the outcome is
    /// known. Throws turn::error when empty.
    std::uint64_t position() const {
        if (!handle_) throw error(TURN_ERR_INVALID_ARGUMENT, "turn::pending::position: no pending acquire");
        std::uint64_t ahead = 0;
        detail::check(turn_pending_position(handle_, &ahead), "turn_pending_position");
        return ahead;
    }
    /// The C handle (owned by this object).
    turn_pending *handle() const noexcept { return handle_; }

private:
    friend class locker;
    explicit pending(turn_pending *h) noexcept : handle_(h) {}
    void drop() noexcept {
        if (handle_) turn_pending_cancel(std::exchange(handle_, nullptr));
    }
    turn_pending *handle_ = nullptr;
};

/// One live ticket of a queue, with its facts as the status read them.
struct ticket {
    std::uint64_t serial = 0;
    std::string label;
    /// It holds (else it waits).
    bool held = false;
    /// Drawn by this library; false for a turn 1.0 client's ticket.
    bool ours = true;
    /// Its fencing token; 0 when not known (a turn 1.0 ticket).
    std::uint64_t token = 0;
    /// How long a holder has held, or a waiter waited; nullopt for the
    /// other state, or when not known (a turn 1.0 ticket).
    std::optional<std::chrono::milliseconds> held_for = std::nullopt;
    std::optional<std::chrono::milliseconds> waited_for = std::nullopt;
    /// Its lease left (its presence key's time to live); nullopt when the
    /// key has no expiry.
    std::optional<std::chrono::milliseconds> lease_left = std::nullopt;
    /// A waiter's place among the waiters, from 1; 0 for a holder.
    std::uint64_t position = 0;
    /// The permits it takes of a semaphore (1 in other queues).
    std::uint32_t weight = 1;
    /// It holds alone: a plain queue's ticket, a writer.
    bool exclusive = true;
};

/// A snapshot of one queue: its tickets ascending, the holders first.
struct status {
    std::uint64_t indicator = 0;
    std::uint64_t dispenser = 0;
    std::vector<ticket> tickets;
    /// TURN_KIND_PLAIN, TURN_KIND_SEMAPHORE or TURN_KIND_RWLOCK.
    int kind = TURN_KIND_PLAIN;
    /// A semaphore's permits (0 for another kind).
    std::uint32_t permits = 0;
};

/// Settings of one acquire (zero durations: the library's defaults).
struct acquire_options {
    std::chrono::milliseconds timeout = forever;
    std::chrono::milliseconds expire{0};
    std::chrono::milliseconds patience{0};
    /// When set, its fire() ends the wait (TURN_ERR_CANCELED).
    const cancel_token *cancel = nullptr;
};

/// Replica confirmation ("durable grants", turn_options_set_min_replicas):
/// a grant, renewal or release counts once `replicas` replicas have it,
/// waiting at most `timeout` for them (> 0, below the command timeout).
/// 0 replicas: do not wait.
///
///   o.min_replicas = turn::min_replicas{1, std::chrono::milliseconds(500)};
struct min_replicas {
    std::uint32_t replicas = 0;
    std::chrono::milliseconds timeout{1000};
};

/// Settings of a locker (turn_options); an empty string or a zero keeps
/// the library's default (see turn_options_new in turn.h).
struct locker_options {
    /// Key prefix (default "turn", as turn 1.0).
    std::string prefix;
    /// Time allowed to connect (default 2 s).
    std::chrono::milliseconds connect_timeout{0};
    /// Time allowed for a reply or a free pooled connection (default 5 s).
    std::chrono::milliseconds command_timeout{0};
    /// Most command connections open at once (default 8, at most 1024).
    std::uint32_t pool_size = 0;
    /// How long a ticket must exist before a missing presence key marks it
    /// dead (default 500 ms).
    std::chrono::milliseconds grace{0};
    /// Seed the serials of new queues from the server's clock.
    bool clock_serials = false;
    /// PEM files for a rediss:// URL: the CA to trust instead of the
    /// system's roots, and a client certificate and key for mutual TLS.
    std::string tls_ca_file, tls_cert_file, tls_key_file;
    /// Replica confirmation; unset: the deployment's default (1 replica
    /// within 1000 ms on a redis+sentinel:// URL, none otherwise).
    std::optional<turn::min_replicas> min_replicas;
};

/// A connection to Redis and its two background threads. Move-only;
/// thread-safe; frees the C locker in its destructor.
class locker {
public:
    /// Connects to url ("redis://[user:password@]host:port/db").
    explicit locker(const std::string &url = "redis://127.0.0.1:6379/0") {
        detail::check(turn_locker_new(url.c_str(), &handle_), "turn_locker_new");
    }
    /// Connects to url with options; throws turn::error
    /// (TURN_ERR_INVALID_ARGUMENT for an option out of range).
    locker(const std::string &url, const locker_options &options) {
        turn_options *o = nullptr;
        detail::check(turn_options_new(&o), "turn_options_new");
        turn_result rc = set(o, options);
        if (rc == TURN_OK) rc = turn_locker_new_with_options(url.c_str(), o, &handle_);
        // The detail message belongs to the failed call, not to the free.
        std::string detail = rc == TURN_OK ? "" : turn_last_error();
        turn_options_free(o);
        if (rc != TURN_OK) {
            throw error(rc, std::string("turn_locker_new_with_options: ") + turn_result_str(rc) + ": " + detail);
        }
    }
    locker(const locker &) = delete;
    locker &operator=(const locker &) = delete;
    locker(locker &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    locker &operator=(locker &&other) noexcept {
        if (this != &other) {
            turn_locker_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    ~locker() { turn_locker_free(handle_); }

    /// Takes a ticket and waits for its turn; throws turn::error
    /// (TURN_ERR_TIMEOUT, TURN_ERR_WOULD_BLOCK, TURN_ERR_CONNECTION, ...).
    lock acquire(const std::string &resource, const std::string &label = "",
                 const acquire_options &options = {}) {
        turn_lock *h = nullptr;
        detail::check(turn_lock_acquire_cancelable(
                          handle_, resource.c_str(), label.c_str(),
                          static_cast<std::uint32_t>(options.expire.count()),
                          static_cast<std::uint32_t>(options.patience.count()),
                          static_cast<std::int64_t>(options.timeout.count()),
                          options.cancel ? options.cancel->handle() : nullptr, &h),
                      "turn_lock_acquire");
        return lock(h);
    }

    /// Takes a ticket and returns without waiting for the turn (one round
    /// trip): a turn::pending whose fd() an event loop watches. The
    /// options' timeout ends the wait (forever by default; no_wait is
    /// refused, TURN_ERR_INVALID_ARGUMENT: use try_acquire); a pending is
    /// ended by its own cancel(), so options.cancel must stay unset
    /// (TURN_ERR_INVALID_ARGUMENT). Throws turn::error.
    pending acquire_start(const std::string &resource, const std::string &label = "",
                          const acquire_options &options = {}) {
        if (options.cancel) {
            throw error(TURN_ERR_INVALID_ARGUMENT,
                        "turn::locker::acquire_start: a pending acquire ends with pending::cancel(), "
                        "not a cancel_token");
        }
        turn_pending *h = nullptr;
        detail::check(turn_acquire_start(handle_, resource.c_str(), label.c_str(),
                                         static_cast<std::uint32_t>(options.expire.count()),
                                         static_cast<std::uint32_t>(options.patience.count()),
                                         static_cast<std::int64_t>(options.timeout.count()), &h),
                      "turn_acquire_start");
        return pending(h);
    }

    /// The lock if it is free now, else std::nullopt.
    std::optional<lock> try_acquire(const std::string &resource, const std::string &label = "") {
        turn_lock *h = nullptr;
        turn_result rc = turn_lock_acquire(handle_, resource.c_str(), label.c_str(), 0, 0, 0, &h);
        if (rc == TURN_ERR_WOULD_BLOCK) return std::nullopt;
        detail::check(rc, "turn_lock_acquire");
        return lock(h);
    }

    /// Takes weight of the permits of the FIFO semaphore resource
    /// (turn_semaphore_acquire): holders are admitted while their weights
    /// add up to at most permits, strictly in draw order. Every acquire of
    /// one resource names the same permits; another count, or a plain lock
    /// or read-write lock there, throws TURN_ERR_WRONG_KIND. permits 0, or
    /// weight 0 or over permits: TURN_ERR_INVALID_ARGUMENT. The lock is an
    /// ordinary turn::lock (token, check, lost_fd, release). The shared
    /// modes take no cancel_token (TURN_ERR_INVALID_ARGUMENT): end a wait
    /// with the pending form, semaphore_start, and pending::cancel().
    lock acquire_semaphore(const std::string &resource, std::uint32_t permits, std::uint32_t weight = 1,
                           const std::string &label = "", const acquire_options &options = {}) {
        no_cancel(options, "turn::locker::acquire_semaphore");
        turn_lock *h = nullptr;
        detail::check(turn_semaphore_acquire(handle_, resource.c_str(), label.c_str(), permits, weight,
                                             options.expire.count(), options.patience.count(),
                                             options.timeout.count(), &h),
                      "turn_semaphore_acquire");
        return lock(h);
    }

    /// acquire_semaphore without waiting for the turn (turn_semaphore_start):
    /// as acquire_start.
    pending semaphore_start(const std::string &resource, std::uint32_t permits, std::uint32_t weight = 1,
                            const std::string &label = "", const acquire_options &options = {}) {
        no_cancel(options, "turn::locker::semaphore_start");
        turn_pending *h = nullptr;
        detail::check(turn_semaphore_start(handle_, resource.c_str(), label.c_str(), permits, weight,
                                           options.expire.count(), options.patience.count(),
                                           options.timeout.count(), &h),
                      "turn_semaphore_start");
        return pending(h);
    }

    /// Takes the read-write lock resource shared, beside other shared
    /// holders (a reader; turn_rwlock_acquire). Draw order decides: a
    /// shared ticket drawn after an exclusive one waits for it. A plain
    /// lock or a semaphore there throws TURN_ERR_WRONG_KIND; no
    /// cancel_token, as acquire_semaphore.
    lock acquire_shared(const std::string &resource, const std::string &label = "",
                        const acquire_options &options = {}) {
        return acquire_rw(resource, label, options, false);
    }

    /// Takes the read-write lock resource exclusive, alone (a writer); as
    /// acquire_shared.
    lock acquire_exclusive(const std::string &resource, const std::string &label = "",
                           const acquire_options &options = {}) {
        return acquire_rw(resource, label, options, true);
    }

    /// acquire_shared without waiting for the turn (turn_rwlock_start): as
    /// acquire_start.
    pending shared_start(const std::string &resource, const std::string &label = "",
                         const acquire_options &options = {}) {
        return rw_start(resource, label, options, false);
    }

    /// acquire_exclusive without waiting for the turn (turn_rwlock_start):
    /// as acquire_start.
    pending exclusive_start(const std::string &resource, const std::string &label = "",
                            const acquire_options &options = {}) {
        return rw_start(resource, label, options, true);
    }

    /// Takes plain locks on every one of resources (1 to 64 distinct
    /// names), or none (turn_lock_acquire_all): the locks in the order of
    /// resources. They are taken in one order every client uses, so such
    /// calls never wait for each other in a circle; options.timeout bounds
    /// the whole call, and on a timeout or error every lock taken is
    /// released before turn::error is thrown; so too when options.cancel
    /// is fired (TURN_ERR_CANCELED).
    std::vector<lock> acquire_all(const std::vector<std::string> &resources, const std::string &label = "",
                                  const acquire_options &options = {}) {
        std::vector<const char *> names;
        names.reserve(resources.size());
        for (const std::string &r : resources) names.push_back(r.c_str());
        std::vector<turn_lock *> handles(resources.size(), nullptr);
        std::vector<lock> locks;
        locks.reserve(resources.size());  // no allocation once the locks are taken
        static const char *const none[1] = {nullptr};  // no names: the library says so
        detail::check(turn_lock_acquire_all_cancelable(
                          handle_, names.empty() ? none : names.data(), names.size(), label.c_str(),
                          options.expire.count(), options.patience.count(), options.timeout.count(),
                          options.cancel ? options.cancel->handle() : nullptr, handles.data()),
                      "turn_lock_acquire_all");
        for (turn_lock *h : handles) locks.push_back(lock(h));
        return locks;
    }

    /// The queue of resource, or std::nullopt when there is none.
    std::optional<status> get_status(const std::string &resource) {
        turn_status *s = nullptr;
        turn_result rc = turn_status_get(handle_, resource.c_str(), &s);
        if (rc == TURN_ERR_NOT_FOUND) return std::nullopt;
        detail::check(rc, "turn_status_get");
        std::unique_ptr<turn_status, void (*)(turn_status *)> owned(s, turn_status_free);
        status out;
        out.indicator = turn_status_indicator(s);
        out.dispenser = turn_status_dispenser(s);
        out.kind = turn_status_kind(s);
        out.permits = turn_status_permits(s);
        for (std::size_t i = 0; i < turn_status_len(s); i++) {
            ticket t;
            t.serial = turn_status_serial_at(s, i);
            t.label = turn_status_label_at(s, i);
            t.held = turn_status_held_at(s, i) == 1;
            t.ours = turn_status_ours_at(s, i) == 1;
            t.token = turn_status_token_at(s, i);
            std::int64_t age = turn_status_age_ms_at(s, i);
            if (age >= 0) (t.held ? t.held_for : t.waited_for) = std::chrono::milliseconds(age);
            std::int64_t lease = turn_status_lease_left_ms_at(s, i);
            if (lease >= 0) t.lease_left = std::chrono::milliseconds(lease);
            t.position = turn_status_position_at(s, i);
            t.weight = turn_status_weight_at(s, i);
            t.exclusive = turn_status_exclusive_at(s, i) == 1;
            out.tickets.push_back(std::move(t));
        }
        return out;
    }

    /// What this locker counted of its own work, in the Prometheus text
    /// format 0.0.4 (turn_locker_metrics: acquires, failures by reason,
    /// locks lost, hand-offs, beats, broken connections, the wait and hold
    /// histograms; every name turn_..., no label naming a resource). No
    /// round trip.
    std::string metrics() const {
        std::size_t needed = 0;
        detail::check(turn_locker_metrics(handle_, nullptr, 0, &needed), "turn_locker_metrics");
        for (;;) {
            std::string text(needed + 64, '\0');  // room for a counter that grows meanwhile
            turn_result rc = turn_locker_metrics(handle_, text.data(), text.size(), &needed);
            if (rc == TURN_OK) {
                text.resize(needed - 1);  // needed counts the NUL
                return text;
            }
            if (needed <= text.size()) detail::check(rc, "turn_locker_metrics");
        }
    }

    /// Moves the indicator past dead tickets; returns it.
    std::uint64_t bump(const std::string &resource) {
        std::uint64_t indicator = 0;
        detail::check(turn_bump(handle_, resource.c_str(), &indicator), "turn_bump");
        return indicator;
    }

    /// Removes an idle queue; throws turn::error (TURN_ERR_BUSY) while in use.
    void reset(const std::string &resource) {
        detail::check(turn_reset(handle_, resource.c_str()), "turn_reset");
    }

    /// The C handle (owned by this object).
    turn_locker *handle() const noexcept { return handle_; }

private:
    static void no_cancel(const acquire_options &options, const char *call) {
        if (options.cancel) {
            throw error(TURN_ERR_INVALID_ARGUMENT,
                        std::string(call) + ": takes no cancel_token (end a wait with the pending form "
                                            "and pending::cancel())");
        }
    }

    lock acquire_rw(const std::string &resource, const std::string &label, const acquire_options &options,
                    bool exclusive) {
        no_cancel(options, exclusive ? "turn::locker::acquire_exclusive" : "turn::locker::acquire_shared");
        turn_lock *h = nullptr;
        detail::check(turn_rwlock_acquire(handle_, resource.c_str(), label.c_str(), exclusive ? 1 : 0,
                                          options.expire.count(), options.patience.count(),
                                          options.timeout.count(), &h),
                      "turn_rwlock_acquire");
        return lock(h);
    }

    pending rw_start(const std::string &resource, const std::string &label, const acquire_options &options,
                     bool exclusive) {
        no_cancel(options, exclusive ? "turn::locker::exclusive_start" : "turn::locker::shared_start");
        turn_pending *h = nullptr;
        detail::check(turn_rwlock_start(handle_, resource.c_str(), label.c_str(), exclusive ? 1 : 0,
                                        options.expire.count(), options.patience.count(),
                                        options.timeout.count(), &h),
                      "turn_rwlock_start");
        return pending(h);
    }

    static turn_result set(turn_options *o, const locker_options &options) {
        // Out of range (negative, or past 2^32 - 1 ms) is refused by the
        // library as 0, or capped.
        auto ms = [](std::chrono::milliseconds d) {
            return d.count() < 0 ? 0u
                   : d.count() > 0xFFFFFFFFLL ? 0xFFFFFFFFu
                                              : static_cast<std::uint32_t>(d.count());
        };
        auto path = [](const std::string &p) { return p.empty() ? nullptr : p.c_str(); };
        turn_result rc = TURN_OK;
        if (rc == TURN_OK && !options.prefix.empty())
            rc = turn_options_set_prefix(o, options.prefix.c_str());
        if (rc == TURN_OK && options.connect_timeout.count() != 0)
            rc = turn_options_set_connect_timeout_ms(o, ms(options.connect_timeout));
        if (rc == TURN_OK && options.command_timeout.count() != 0)
            rc = turn_options_set_command_timeout_ms(o, ms(options.command_timeout));
        if (rc == TURN_OK && options.pool_size != 0) rc = turn_options_set_pool_size(o, options.pool_size);
        if (rc == TURN_OK && options.grace.count() != 0) rc = turn_options_set_grace_ms(o, ms(options.grace));
        if (rc == TURN_OK && options.clock_serials) rc = turn_options_set_clock_serials(o, 1);
        if (rc == TURN_OK && !(options.tls_ca_file.empty() && options.tls_cert_file.empty() &&
                               options.tls_key_file.empty()))
            rc = turn_options_set_tls(o, path(options.tls_ca_file), path(options.tls_cert_file),
                                      path(options.tls_key_file));
        // Last: its timeout is checked against the command timeout.
        if (rc == TURN_OK && options.min_replicas)
            rc = turn_options_set_min_replicas(o, options.min_replicas->replicas,
                                               ms(options.min_replicas->timeout));
        return rc;
    }

    turn_locker *handle_ = nullptr;
};

/// The level of a message of the library (TURN_LOG_*).
enum class log_level : int {
    error = TURN_LOG_ERROR,  ///< something failed (a background thread was restarted)
    warn = TURN_LOG_WARN,    ///< something may go wrong (a slow heartbeat: locks may be lost)
    info = TURN_LOG_INFO,
    debug = TURN_LOG_DEBUG,
};

/// Receives the library's messages: see set_log_callback.
using log_function = std::function<void(log_level level, std::string_view message)>;

namespace detail {
/// The function of set_log_callback; never destroyed (the library's
/// threads may call it until the process ends).
struct log_state {
    std::mutex mutex;
    std::shared_ptr<const log_function> function;
};
inline log_state &log_sink() {
    static log_state *state = new log_state;
    return *state;
}
inline void log_trampoline(void *, int level, const char *message) noexcept {
    std::shared_ptr<const log_function> f;
    {
        std::lock_guard<std::mutex> hold(log_sink().mutex);
        f = log_sink().function;
    }
    if (!f) return;
    try {
        (*f)(static_cast<log_level>(level), std::string_view(message));
    } catch (...) {
        // Never into the library's thread.
    }
}
}  // namespace detail

/// Sends every message the library would write on standard error (a slow
/// heartbeat, a background thread restarted) to f instead, process-wide
/// (turn_set_log_callback), with its level and without a trailing newline;
/// an empty f gives them back to standard error. Messages never contain a
/// password.
///
/// f may be called from any thread, the library's own included, several at
/// once; it should return soon (on a locker's heartbeat thread, time spent
/// in f delays that locker's lease renewals) and must not destroy a
/// turn::locker; an exception it throws is caught and dropped. When this
/// returns, the f it replaced is no longer running (unless called from
/// within f: then it returns at once).
inline void set_log_callback(log_function f) {
    if (!f) {
        detail::check(turn_set_log_callback(nullptr, nullptr), "turn_set_log_callback");
        std::lock_guard<std::mutex> hold(detail::log_sink().mutex);
        detail::log_sink().function.reset();
        return;
    }
    {
        std::lock_guard<std::mutex> hold(detail::log_sink().mutex);
        detail::log_sink().function = std::make_shared<const log_function>(std::move(f));
    }
    detail::check(turn_set_log_callback(&detail::log_trampoline, nullptr), "turn_set_log_callback");
}

}  // namespace turn

#endif  // C++17

#endif /* TURN_HPP */
