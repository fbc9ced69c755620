// Package turn is the Go binding of the turn library: a FIFO, take-a-number
// lock for shared resources, kept in Redis, compatible with the Python
// package turn 1.0.
//
//	locker, err := turn.NewLocker("redis://127.0.0.1:6379/0")
//	lock, err := locker.Lock(ctx, "printer", turn.Label("report job"))
//	defer lock.Unlock()
//	write(lock.Token()) // the fencing token (lock.Serial() is the ticket number)
//
// The shared modes give the same *Lock: Semaphore (weight of a FIFO
// semaphore's permits), ReadLock and WriteLock (a read-write lock), and
// LockAll (plain locks on several resources, all or none).
//
// It links libturn through cgo (#cgo pkg-config: turn), so PKG_CONFIG_PATH
// must find turn.pc (an installed library) or turn-uninstalled.pc (the
// build tree: make pkgconfig).
package turn

/*
#cgo pkg-config: turn
#include <stdint.h>
#include <stdlib.h>
#include "turn.h"

// Handles are checked integers, not addresses: they stay uintptr_t on the
// Go side and become pointer types only here, so that Go's garbage
// collector never sees them as pointers.
static turn_result go_locker_new(const char *url, const char *prefix, const char *ca,
                                 const char *cert, const char *key, int set_replicas,
                                 uint32_t replicas, uint32_t replica_timeout_ms, uintptr_t *out) {
	turn_options *opts = NULL;
	turn_result rc = turn_options_new(&opts);
	if (rc != TURN_OK) return rc;
	if (prefix) rc = turn_options_set_prefix(opts, prefix);
	if (rc == TURN_OK && (ca || cert || key)) rc = turn_options_set_tls(opts, ca, cert, key);
	if (rc == TURN_OK && set_replicas)
		rc = turn_options_set_min_replicas(opts, replicas, replica_timeout_ms);
	turn_locker *l = NULL;
	if (rc == TURN_OK) rc = turn_locker_new_with_options(url, opts, &l);
	turn_options_free(opts);
	if (rc == TURN_OK) *out = (uintptr_t)l;
	return rc;
}
static void go_locker_free(uintptr_t l) { turn_locker_free((turn_locker *)l); }
// The acquires of the shared modes. kind: 1 a semaphore (permits,
// weight), 2 a read-write lock (exclusive when weight is not 0); plain
// otherwise. expire and patience 0 for the defaults.
static turn_result go_mode_acquire(uintptr_t l, int kind, uint32_t permits, uint32_t weight,
                                   const char *resource, const char *label, uint32_t expire,
                                   uint32_t patience, int64_t timeout, uintptr_t *out) {
	turn_lock *lock = NULL;
	turn_result rc;
	if (kind == 1)
		rc = turn_semaphore_acquire((turn_locker *)l, resource, label, permits, weight, expire,
		                            patience, timeout, &lock);
	else if (kind == 2)
		rc = turn_rwlock_acquire((turn_locker *)l, resource, label, weight != 0, expire, patience,
		                         timeout, &lock);
	else
		rc = turn_lock_acquire((turn_locker *)l, resource, label, expire, patience, timeout, &lock);
	if (rc == TURN_OK) *out = (uintptr_t)lock;
	return rc;
}
static turn_result go_mode_start(uintptr_t l, int kind, uint32_t permits, uint32_t weight,
                                 const char *resource, const char *label, uint32_t expire,
                                 uint32_t patience, int64_t timeout, uintptr_t *out) {
	turn_pending *p = NULL;
	turn_result rc;
	if (kind == 1)
		rc = turn_semaphore_start((turn_locker *)l, resource, label, permits, weight, expire,
		                          patience, timeout, &p);
	else if (kind == 2)
		rc = turn_rwlock_start((turn_locker *)l, resource, label, weight != 0, expire, patience,
		                       timeout, &p);
	else
		rc = turn_acquire_start((turn_locker *)l, resource, label, expire, patience, timeout, &p);
	if (rc == TURN_OK) *out = (uintptr_t)p;
	return rc;
}
// All or none: the handles written to out[0..count) (uintptr_t, as every
// handle on the Go side). cancel is a turn_cancel, or 0.
static turn_result go_acquire_all(uintptr_t l, char **resources, size_t count, const char *label,
                                  int64_t expire, int64_t patience, int64_t timeout,
                                  uintptr_t cancel, uintptr_t *out) {
	turn_lock *locks[64];
	turn_result rc = turn_lock_acquire_all_cancelable(
		(turn_locker *)l, (const char *const *)resources, count, label, expire, patience, timeout,
		(const turn_cancel *)cancel, count <= 64 ? locks : NULL);
	if (rc == TURN_OK) {
		for (size_t i = 0; i < count; i++) out[i] = (uintptr_t)locks[i];
	}
	return rc;
}
static turn_result go_cancel_new(uintptr_t *out) {
	turn_cancel *c = NULL;
	turn_result rc = turn_cancel_new(&c);
	if (rc == TURN_OK) *out = (uintptr_t)c;
	return rc;
}
static void go_cancel_fire(uintptr_t c) { turn_cancel_fire((turn_cancel *)c); }
static void go_cancel_free(uintptr_t c) { turn_cancel_free((turn_cancel *)c); }
static int go_pending_fd(uintptr_t p) { return turn_pending_fd((const turn_pending *)p); }
static turn_result go_pending_finish(uintptr_t p, uintptr_t *out) {
	turn_lock *lock = NULL;
	turn_result rc = turn_pending_finish((turn_pending *)p, &lock);
	if (rc == TURN_OK) *out = (uintptr_t)lock;
	return rc;
}
static turn_result go_pending_cancel(uintptr_t p) { return turn_pending_cancel((turn_pending *)p); }
static turn_result go_release(uintptr_t lock) { return turn_lock_release((turn_lock *)lock); }
static turn_result go_check(uintptr_t lock) { return turn_lock_check((turn_lock *)lock); }
static int go_lost_fd(uintptr_t lock) { return turn_lock_lost_fd((turn_lock *)lock); }
static uint64_t go_serial(uintptr_t lock) { return turn_lock_serial((turn_lock *)lock); }
static uint64_t go_token(uintptr_t lock) {
	uint64_t token = 0;
	turn_lock_token((turn_lock *)lock, &token);
	return token;
}
static turn_result go_health(uintptr_t l) { return turn_locker_health((turn_locker *)l); }
static turn_result go_bump(uintptr_t l, const char *resource, uint64_t *out) {
	return turn_bump((turn_locker *)l, resource, out);
}
static turn_result go_reset(uintptr_t l, const char *resource) {
	return turn_reset((turn_locker *)l, resource);
}
static turn_result go_status(uintptr_t l, const char *resource, uintptr_t *out) {
	turn_status *s = NULL;
	turn_result rc = turn_status_get((turn_locker *)l, resource, &s);
	if (rc == TURN_OK) *out = (uintptr_t)s;
	return rc;
}
static uint64_t go_status_indicator(uintptr_t s) { return turn_status_indicator((turn_status *)s); }
static uint64_t go_status_dispenser(uintptr_t s) { return turn_status_dispenser((turn_status *)s); }
static size_t go_status_len(uintptr_t s) { return turn_status_len((turn_status *)s); }
static uint64_t go_status_serial_at(uintptr_t s, size_t i) {
	return turn_status_serial_at((turn_status *)s, i);
}
static const char *go_status_label_at(uintptr_t s, size_t i) {
	return turn_status_label_at((turn_status *)s, i);
}
static void go_status_free(uintptr_t s) { turn_status_free((turn_status *)s); }
static int go_status_kind(uintptr_t s) { return turn_status_kind((turn_status *)s); }
static uint32_t go_status_permits(uintptr_t s) { return turn_status_permits((turn_status *)s); }
// The facts of ticket i, through the pointers.
static void go_status_facts_at(uintptr_t h, size_t i, int *held, int *ours, uint64_t *token,
                               int64_t *age_ms, int64_t *lease_ms, uint64_t *position,
                               uint32_t *weight, int *exclusive) {
	const turn_status *s = (const turn_status *)h;
	*held = turn_status_held_at(s, i);
	*ours = turn_status_ours_at(s, i);
	*token = turn_status_token_at(s, i);
	*age_ms = turn_status_age_ms_at(s, i);
	*lease_ms = turn_status_lease_left_ms_at(s, i);
	*position = turn_status_position_at(s, i);
	*weight = turn_status_weight_at(s, i);
	*exclusive = turn_status_exclusive_at(s, i);
}
static turn_result go_pending_position(uintptr_t p, uint64_t *ahead) {
	return turn_pending_position((const turn_pending *)p, ahead);
}
// The log callback: goTurnLog (log.go, exported) behind a turn_log_fn.
extern void goTurnLog(void *context, int level, char *message);
static void go_log(void *context, int level, const char *message) {
	goTurnLog(context, level, (char *)message);
}
static turn_result go_set_log_callback(int on) { return turn_set_log_callback(on ? go_log : NULL, NULL); }
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// Code is a turn_result of the C library.
type Code int

// The result codes (values of turn_result; never renumbered).
const (
	CodeNullArgument    Code = 1
	CodeInvalidArgument Code = 2
	CodeConnection      Code = 3
	CodeTimeout         Code = 4
	CodeWouldBlock      Code = 5
	CodeLost            Code = 6
	CodeBusy            Code = 7
	CodeNotFound        Code = 8
	CodeForked          Code = 9
	CodeProtocol        Code = 10
	CodeCanceled        Code = 11
	CodeWrongKind       Code = 12
	CodePanic           Code = 99
)

// Error is a failed call: its code and the library's detail message.
// errors.Is(err, turn.ErrTimeout) and the like compare codes.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	name := C.GoString(C.turn_result_str(C.int(e.Code)))
	if e.Message == "" {
		return "turn: " + name
	}
	return "turn: " + name + ": " + e.Message
}

// Is matches an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors, for errors.Is.
var (
	ErrNullArgument    = &Error{Code: CodeNullArgument}
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument}
	ErrConnection      = &Error{Code: CodeConnection}
	ErrTimeout         = &Error{Code: CodeTimeout}
	ErrWouldBlock      = &Error{Code: CodeWouldBlock}
	ErrLost            = &Error{Code: CodeLost}
	ErrBusy            = &Error{Code: CodeBusy}
	ErrNotFound        = &Error{Code: CodeNotFound}
	ErrForked          = &Error{Code: CodeForked}
	ErrProtocol        = &Error{Code: CodeProtocol}
	ErrCanceled        = &Error{Code: CodeCanceled}
	// ErrWrongKind: the resource's queue is of another kind (a plain lock,
	// a semaphore, a read-write lock), or a semaphore of other permits.
	ErrWrongKind = &Error{Code: CodeWrongKind}
	ErrPanic     = &Error{Code: CodePanic}
	// ErrClosed: the Locker was closed. Distinct from every other error
	// (it is not an *Error, so errors.Is matches no code with it).
	ErrClosed = errors.New("turn: the locker is closed")
)

// waitError is a wait ended by the context: it matches both the context's
// error (context.Canceled, context.DeadlineExceeded) and the turn error.
type waitError struct {
	ctxErr error
	err    *Error
}

func (e *waitError) Error() string        { return e.ctxErr.Error() + ": " + e.err.Error() }
func (e *waitError) Is(target error) bool { return target == e.ctxErr || e.err.Is(target) }
func (e *waitError) Unwrap() error        { return e.err }

// call runs f on one OS thread, so that turn_last_error (thread-local)
// belongs to the same call.
func call(f func() C.turn_result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := f()
	if rc == C.TURN_OK {
		return nil
	}
	return &Error{Code: Code(rc), Message: C.GoString(C.turn_last_error())}
}

// Locker is a connection to Redis with the library's three background
// threads, shared by every lock it takes. Safe for concurrent use.
type Locker struct {
	mu     sync.RWMutex
	handle C.uintptr_t
}

// Option sets up a Locker.
type LockerOption func(*lockerOptions)

type lockerOptions struct {
	prefix, ca, cert, key string
	minReplicas           *minReplicas
}

type minReplicas struct {
	replicas uint32
	timeout  time.Duration
}

// Prefix sets the key prefix (default "turn").
func Prefix(p string) LockerOption { return func(o *lockerOptions) { o.prefix = p } }

// TLS sets PEM files for a rediss:// URL: the CA to trust instead of the
// system's roots, and a client certificate and key for mutual TLS (each may
// be "").
func TLS(caFile, certFile, keyFile string) LockerOption {
	return func(o *lockerOptions) { o.ca, o.cert, o.key = caFile, certFile, keyFile }
}

// MinReplicas sets replica confirmation: a grant, renewal or release
// counts once replicas replicas have it, waiting at most timeout for them
// (whole milliseconds, > 0 and below the command timeout of 5 s); 0
// replicas: do not wait. Default: 1 replica within 1 s on a
// redis+sentinel:// URL, 0 otherwise.
func MinReplicas(replicas uint32, timeout time.Duration) LockerOption {
	return func(o *lockerOptions) { o.minReplicas = &minReplicas{replicas, timeout} }
}

// cstring is C.CString, or NULL for "".
func cstring(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

// NewLocker connects to url ("redis://[user:password@]host:port/db"; ""
// for redis://127.0.0.1:6379/0).
func NewLocker(url string, opts ...LockerOption) (*Locker, error) {
	var o lockerOptions
	for _, f := range opts {
		f(&o)
	}
	strs := []*C.char{cstring(url), cstring(o.prefix), cstring(o.ca), cstring(o.cert), cstring(o.key)}
	defer func() {
		for _, p := range strs {
			C.free(unsafe.Pointer(p))
		}
	}()
	var setReplicas C.int
	var replicas, replicaTimeout C.uint32_t
	if m := o.minReplicas; m != nil {
		setReplicas, replicas, replicaTimeout = 1, C.uint32_t(m.replicas), millis(m.timeout)
	}
	var h C.uintptr_t
	if err := call(func() C.turn_result {
		return C.go_locker_new(strs[0], strs[1], strs[2], strs[3], strs[4], setReplicas, replicas, replicaTimeout, &h)
	}); err != nil {
		return nil, err
	}
	l := &Locker{handle: h}
	runtime.SetFinalizer(l, func(l *Locker) { l.Close() })
	return l, nil
}

// Close stops the locker's threads, releases locks still held and closes
// its connections. Calls after Close return ErrClosed.
func (l *Locker) Close() error {
	l.mu.Lock()
	h := l.handle
	l.handle = 0
	l.mu.Unlock()
	if h != 0 {
		C.go_locker_free(h)
	}
	return nil
}

func (l *Locker) use() (C.uintptr_t, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.handle == 0 {
		return 0, ErrClosed
	}
	return l.handle, nil
}

// LockOption sets up one Lock call.
type LockOption func(*lockOptions)

type lockOptions struct {
	label            string
	expire, patience time.Duration
	try              bool
	onPosition       func(ahead uint64)
}

// Label shows in status and messages.
func Label(s string) LockOption { return func(o *lockOptions) { o.label = s } }

// Expire sets the lease (default 10 s; renewed while waiting and holding).
func Expire(d time.Duration) LockOption { return func(o *lockOptions) { o.expire = d } }

// Patience sets the longest wait without news (default 60 s).
func Patience(d time.Duration) LockOption { return func(o *lockOptions) { o.patience = d } }

// Try makes Lock take the lock only if it is free now (else ErrWouldBlock).
func Try() LockOption { return func(o *lockOptions) { o.try = true } }

// OnPosition has a waiting Lock (Semaphore, ReadLock, WriteLock) call f,
// on its own goroutine, with the number of live tickets ahead of it (the
// holder included) when its ticket is drawn and each time that number
// changes as its waiter reads the queue, for progress displays. f is not
// called once the outcome is known, nor for a lock taken at once.
//
//	lock, err := locker.Lock(ctx, "printer", turn.OnPosition(func(ahead uint64) {
//		fmt.Printf("%d ahead\n", ahead)
//	}))
func OnPosition(f func(ahead uint64)) LockOption {
	return func(o *lockOptions) { o.onPosition = f }
}

// positionPoll is how often a wait with OnPosition looks at its position
// (a read of the pending acquire, no round trip).
const positionPoll = 100 * time.Millisecond

func millis(d time.Duration) C.uint32_t {
	ms := d.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	if ms > int64(^uint32(0)) {
		ms = int64(^uint32(0))
	}
	return C.uint32_t(ms)
}

// Lock takes a ticket for resource and waits for its turn until ctx is
// done: a deadline gives up with an error matching ErrTimeout and
// context.DeadlineExceeded, a cancellation with ErrCanceled and
// context.Canceled. A ticket given up leaves no trace (a turn that came
// meanwhile is handed on).
//
// A waiting goroutine holds no OS thread: the ticket is drawn with
// turn_acquire_start (one round trip), and the pending acquire's fd is
// watched by the one goroutine that watches every fd of this package
// (epoll on Linux; elsewhere the outcome is polled every 20 ms on a
// timer), so 1,000 goroutines waiting take a handful of threads.
func (l *Locker) Lock(ctx context.Context, resource string, opts ...LockOption) (*Lock, error) {
	return l.acquire(ctx, resource, mode{}, opts)
}

// mode is what a ticket asks of its queue: the plain lock (the zero
// mode), a semaphore's weight, a read-write lock's share.
type mode struct {
	kind            C.int // 0 plain, 1 semaphore, 2 read-write
	permits, weight C.uint32_t
}

// Semaphore takes weight of the permits of the FIFO semaphore resource,
// waiting until ctx is done as Lock does: holders are admitted while their
// weights add up to at most permits, strictly in draw order (a ticket that
// does not fit yet holds back every later one). Every acquire of one
// resource names the same permits: other permits, or a plain or
// read-write lock there, fail with ErrWrongKind. permits 0, or weight 0 or
// over permits: ErrInvalidArgument. The Lock is an ordinary one (Token,
// Check, Lost, Unlock); a holder that dies gives its permits back within
// its lease and a second.
func (l *Locker) Semaphore(ctx context.Context, resource string, permits, weight uint32, opts ...LockOption) (*Lock, error) {
	return l.acquire(ctx, resource, mode{1, C.uint32_t(permits), C.uint32_t(weight)}, opts)
}

// ReadLock takes the read-write lock resource shared (a reader, beside
// other readers), waiting until ctx is done as Lock does. Draw order
// decides: a reader drawn after a waiting writer waits for it. A plain
// lock or a semaphore there fails with ErrWrongKind.
func (l *Locker) ReadLock(ctx context.Context, resource string, opts ...LockOption) (*Lock, error) {
	return l.acquire(ctx, resource, mode{kind: 2}, opts)
}

// WriteLock takes the read-write lock resource exclusive (a writer,
// alone); as ReadLock.
func (l *Locker) WriteLock(ctx context.Context, resource string, opts ...LockOption) (*Lock, error) {
	return l.acquire(ctx, resource, mode{kind: 2, weight: 1}, opts)
}

// MaxAllResources is the most resources one LockAll takes.
const MaxAllResources = 64

// LockAll takes plain locks on every one of resources (1 to
// MaxAllResources distinct names), or none: the locks come back in the
// order of resources. They are taken one after another in one order every
// client of the library uses (the names' bytes, ascending), so that two
// LockAll calls, or LockAll and single locks, never wait for each other in
// a circle. ctx bounds the whole call: a deadline gives up with an error
// matching ErrTimeout and context.DeadlineExceeded, a cancellation with
// ErrCanceled and context.Canceled; then, as on any error, every lock
// taken is released and the waiting ticket withdrawn. Try() takes them
// only if all are free now (else ErrWouldBlock). A name twice, none, or
// more than MaxAllResources: ErrInvalidArgument.
//
// Unlike Lock, the wait holds an OS thread (turn_lock_acquire_all has no
// pending form); the context's end reaches it through a cancel token.
func (l *Locker) LockAll(ctx context.Context, resources []string, opts ...LockOption) ([]*Lock, error) {
	var o lockOptions
	for _, f := range opts {
		f(&o)
	}
	h, err := l.use()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(l)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := C.int64_t(-1)
	if o.try {
		timeout = 0
	} else if dl, ok := ctx.Deadline(); ok {
		timeout = C.int64_t(time.Until(dl).Milliseconds())
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	n := len(resources)
	if n > MaxAllResources {
		return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(
			"acquiring all of several resources takes 1 to %d, not %d", MaxAllResources, n)}
	}
	// The names in C memory (cgo passes no Go pointer to Go pointers).
	var slot *C.char
	names := (**C.char)(C.calloc(C.size_t(n+1), C.size_t(unsafe.Sizeof(slot))))
	cnames := unsafe.Slice(names, n+1)
	defer func() {
		for _, p := range cnames {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(names))
	}()
	for i, r := range resources {
		cnames[i] = C.CString(r)
	}
	clabel := C.CString(o.label)
	defer C.free(unsafe.Pointer(clabel))
	expire, patience := C.int64_t(millis(o.expire)), C.int64_t(millis(o.patience))
	handles := make([]C.uintptr_t, MaxAllResources)

	var cancel C.uintptr_t
	if ctx.Done() != nil && !o.try {
		if err := call(func() C.turn_result { return C.go_cancel_new(&cancel) }); err != nil {
			return nil, err
		}
	}
	run := func() error {
		return call(func() C.turn_result {
			return C.go_acquire_all(h, names, C.size_t(n), clabel, expire, patience, timeout, cancel, &handles[0])
		})
	}
	if cancel == 0 {
		err = run()
	} else {
		done := make(chan error, 1)
		go func() { done <- run() }()
		select {
		case err = <-done:
		case <-ctx.Done():
			C.go_cancel_fire(cancel)
			err = <-done
		}
		C.go_cancel_free(cancel)
	}
	if err == nil {
		locks := make([]*Lock, n)
		for i := range locks {
			locks[i] = newLock(handles[i])
		}
		return locks, nil
	}
	e := err.(*Error)
	switch {
	case e.Code == CodeTimeout && timeout > 0:
		return nil, &waitError{context.DeadlineExceeded, e}
	case e.Code == CodeCanceled && ctx.Err() == context.DeadlineExceeded:
		return nil, &waitError{ctx.Err(), &Error{Code: CodeTimeout, Message: e.Message}}
	case e.Code == CodeCanceled && ctx.Err() != nil:
		return nil, &waitError{ctx.Err(), e}
	}
	return nil, err
}

func (l *Locker) acquire(ctx context.Context, resource string, m mode, opts []LockOption) (*Lock, error) {
	var o lockOptions
	for _, f := range opts {
		f(&o)
	}
	h, err := l.use()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(l)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := C.int64_t(-1)
	if o.try {
		timeout = 0
	} else if dl, ok := ctx.Deadline(); ok {
		timeout = C.int64_t(time.Until(dl).Milliseconds())
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	cres := C.CString(resource)
	defer C.free(unsafe.Pointer(cres))
	clabel := C.CString(o.label)
	defer C.free(unsafe.Pointer(clabel))
	expire, patience := millis(o.expire), millis(o.patience)

	if o.try {
		// One round trip, no wait.
		var lh C.uintptr_t
		err := roundTrip(func() C.turn_result {
			return C.go_mode_acquire(h, m.kind, m.permits, m.weight, cres, clabel, expire, patience, 0, &lh)
		})
		if err != nil {
			return nil, err
		}
		return newLock(lh), nil
	}

	var p C.uintptr_t
	err = roundTrip(func() C.turn_result {
		return C.go_mode_start(h, m.kind, m.permits, m.weight, cres, clabel, expire, patience, timeout, &p)
	})
	if err != nil {
		return nil, err
	}
	fd := int(C.go_pending_fd(p))
	var told uint64
	var tick <-chan time.Time
	if o.onPosition != nil {
		ticker := time.NewTicker(positionPoll)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		ready, stop := watchReadable(fd)
		if o.onPosition != nil {
			var ahead C.uint64_t
			if C.go_pending_position(p, &ahead) == C.TURN_OK && ahead != 0 && uint64(ahead) != told {
				told = uint64(ahead)
				o.onPosition(told)
			}
		}
		select {
		case <-ready:
			stop()
		case <-tick:
			stop()
			continue
		case <-ctx.Done():
			// Out of the poll set before the cancel closes the fd.
			stop()
			return nil, withdraw(ctx, p)
		}
		var lh C.uintptr_t
		err := call(func() C.turn_result { return C.go_pending_finish(p, &lh) })
		if err == nil {
			return newLock(lh), nil
		}
		e := err.(*Error)
		switch {
		case e.Code == CodeWouldBlock:
			continue // not yet (the pending stays)
		case e.Code == CodeTimeout && timeout > 0:
			return nil, &waitError{context.DeadlineExceeded, e}
		}
		return nil, err
	}
}

// withdraw cancels the pending acquire p for ctx, which is done; the
// error to return, matching ctx's error and ErrTimeout (a deadline) or
// ErrCanceled.
func withdraw(ctx context.Context, p C.uintptr_t) error {
	e := &Error{Code: CodeCanceled, Message: "the context was canceled while waiting; the ticket was withdrawn"}
	if ctx.Err() == context.DeadlineExceeded {
		e = &Error{Code: CodeTimeout, Message: "the context's deadline passed while waiting; the ticket was withdrawn"}
	}
	if err := roundTrip(func() C.turn_result { return C.go_pending_cancel(p) }); err != nil {
		e.Message += " (Redis was not told: " + err.Error() + "; its lease runs out by itself)"
	}
	return &waitError{ctx.Err(), e}
}

// blocking bounds the calls into the library that block for a round trip
// on behalf of waits (drawing a ticket, withdrawing one): each holds an OS
// thread while it runs, so 1,000 goroutines calling at once would make as
// many threads. A handful run at once; the others queue on this channel,
// which holds no thread.
var blocking = make(chan struct{}, 4)

// roundTrip is call, with at most cap(blocking) of them running at once.
func roundTrip(f func() C.turn_result) error {
	blocking <- struct{}{}
	defer func() { <-blocking }()
	return call(f)
}

func newLock(lh C.uintptr_t) *Lock {
	lock := &Lock{handle: lh, serial: uint64(C.go_serial(lh)), token: uint64(C.go_token(lh))}
	runtime.SetFinalizer(lock, func(k *Lock) { k.Unlock() })
	return lock
}

// Health returns nil while the locker's background threads never failed
// and the heartbeat keeps up; an error with the count and the last failure
// once one of them panicked (a bug) and was restarted (the locker keeps
// working); and ErrConnection for a minute after a heartbeat beat
// took longer than a third of the shortest lease among its tickets.
func (l *Locker) Health() error {
	h, err := l.use()
	if err != nil {
		return err
	}
	return call(func() C.turn_result { return C.go_health(h) })
}

// withContext runs one call of the C library (one round trip, bounded by
// the locker's command timeout) and returns its error, or ctx's error
// when ctx is done first: before the call starts, nothing is sent; while
// it runs, the call goes on in the background and may still take effect.
func withContext(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil {
		return f()
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// BumpContext moves the indicator of resource past dead tickets (never back) and
// returns it. See withContext for what ctx does.
func (l *Locker) BumpContext(ctx context.Context, resource string) (uint64, error) {
	h, err := l.use()
	if err != nil {
		return 0, err
	}
	var ind uint64
	err = withContext(ctx, func() error {
		cres := C.CString(resource)
		defer C.free(unsafe.Pointer(cres))
		var out C.uint64_t
		err := call(func() C.turn_result { return C.go_bump(h, cres, &out) })
		runtime.KeepAlive(l)
		ind = uint64(out)
		return err
	})
	if err != nil {
		return 0, err
	}
	return ind, nil
}

// ResetContext removes the queue of resource when idle (ErrBusy while in use).
// When ctx ends while the reset is under way, it may still take effect.
func (l *Locker) ResetContext(ctx context.Context, resource string) error {
	h, err := l.use()
	if err != nil {
		return err
	}
	return withContext(ctx, func() error {
		cres := C.CString(resource)
		defer C.free(unsafe.Pointer(cres))
		err := call(func() C.turn_result { return C.go_reset(h, cres) })
		runtime.KeepAlive(l)
		return err
	})
}

// Ticket is one live ticket of a queue, as the status read it.
type Ticket struct {
	Serial uint64
	Label  string
	// Held: it holds (else it waits).
	Held bool
	// Ours: drawn by this library; false for a turn 1.0 client's ticket.
	Ours bool
	// Token is its fencing token (0 when not known: a turn 1.0 ticket).
	Token uint64
	// HeldFor is how long a holder has held; WaitedFor how long a waiter
	// has waited (0 for the other state, or when not known: a turn 1.0
	// ticket).
	HeldFor, WaitedFor time.Duration
	// LeaseLeft is its lease left (its presence key's time to live);
	// NoExpiry when the key has none.
	LeaseLeft time.Duration
	// Position is a waiter's place among the waiters, from 1 (0 for a
	// holder).
	Position uint64
	// Weight is the permits it takes of a semaphore (1 in other queues);
	// Exclusive, that it holds alone (a plain queue's ticket, a writer).
	Weight    uint32
	Exclusive bool
}

// NoExpiry is the LeaseLeft of a ticket whose presence key has no expiry.
const NoExpiry time.Duration = -1

// Kind is the kind of a queue.
type Kind int

// The kinds of queues (TURN_KIND_* in turn.h).
const (
	KindPlain     Kind = 0
	KindSemaphore Kind = 1
	KindReadWrite Kind = 2
)

// Status is a snapshot of one queue: its tickets ascending, the holders
// first.
type Status struct {
	Indicator, Dispenser uint64
	Tickets              []Ticket
	Kind                 Kind
	// Permits of a semaphore (0 for another kind).
	Permits uint32
}

// StatusContext reads the queue of resource (ErrNotFound when there is none).
// See withContext for what ctx does.
func (l *Locker) StatusContext(ctx context.Context, resource string) (*Status, error) {
	h, err := l.use()
	if err != nil {
		return nil, err
	}
	var out *Status
	err = withContext(ctx, func() error {
		cres := C.CString(resource)
		defer C.free(unsafe.Pointer(cres))
		var s C.uintptr_t
		err := call(func() C.turn_result { return C.go_status(h, cres, &s) })
		runtime.KeepAlive(l)
		if err != nil {
			return err
		}
		defer C.go_status_free(s)
		st := &Status{
			Indicator: uint64(C.go_status_indicator(s)),
			Dispenser: uint64(C.go_status_dispenser(s)),
			Kind:      Kind(C.go_status_kind(s)),
			Permits:   uint32(C.go_status_permits(s)),
		}
		n := int(C.go_status_len(s))
		for i := 0; i < n; i++ {
			var held, ours, exclusive C.int
			var token, position C.uint64_t
			var age, lease C.int64_t
			var weight C.uint32_t
			C.go_status_facts_at(s, C.size_t(i), &held, &ours, &token, &age, &lease, &position, &weight, &exclusive)
			t := Ticket{
				Serial:    uint64(C.go_status_serial_at(s, C.size_t(i))),
				Label:     C.GoString(C.go_status_label_at(s, C.size_t(i))),
				Held:      held == 1,
				Ours:      ours == 1,
				Token:     uint64(token),
				LeaseLeft: NoExpiry,
				Position:  uint64(position),
				Weight:    uint32(weight),
				Exclusive: exclusive == 1,
			}
			if age >= 0 && t.Held {
				t.HeldFor = time.Duration(age) * time.Millisecond
			} else if age >= 0 {
				t.WaitedFor = time.Duration(age) * time.Millisecond
			}
			if lease >= 0 {
				t.LeaseLeft = time.Duration(lease) * time.Millisecond
			}
			st.Tickets = append(st.Tickets, t)
		}
		out = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Lock is one held lock. Unlock it when done (a finalizer unlocks a Lock
// that is dropped held, as a safety net only).
type Lock struct {
	mu     sync.Mutex
	handle C.uintptr_t
	serial uint64
	token  uint64
	// lost is the channel of Lost, made on its first call; stop ends its
	// watch (before the release closes the lost fd).
	lost chan struct{}
	stop func()
}

// Serial is the ticket number (turn 1.0's): it starts over when the queue
// does (a Redis restart without persistence, a reset).
func (k *Lock) Serial() uint64 { return k.serial }

// Token is the fencing token: greater than every earlier lock's on this
// resource, also across a Redis restart without persistence.
func (k *Lock) Token() uint64 { return k.token }

// Check returns nil while the lock is held and an error matching ErrLost
// once it is lost (no round trip).
func (k *Lock) Check() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.handle == 0 {
		return &Error{Code: CodeInvalidArgument, Message: "unlocked already"}
	}
	return call(func() C.turn_result { return C.go_check(k.handle) })
}

// Unlock gives the turn to the next ticket. It returns an error matching
// ErrLost when the lock had been lost. Unlocking twice returns an error
// matching ErrInvalidArgument.
func (k *Lock) Unlock() error {
	k.mu.Lock()
	h := k.handle
	k.handle = 0
	stop := k.stop
	k.stop = nil
	k.mu.Unlock()
	if h == 0 {
		return &Error{Code: CodeInvalidArgument, Message: "unlocked already"}
	}
	if stop != nil {
		stop()
	}
	runtime.SetFinalizer(k, nil)
	return call(func() C.turn_result { return C.go_release(h) })
}

// Lost returns a channel that is closed once the lock is known lost, like
// etcd's Session.Done(): within one heartbeat (a third of the lease) after
// its presence key vanished or the indicator moved on, at once when the
// lease lapses by the local clock, and when the locker is closed. Each call
// returns the same channel. It is never closed for a lock unlocked
// normally, so select on it beside your own work:
//
//	select {
//	case <-lock.Lost():
//		cancel() // stop writing: someone else may hold the resource
//	case <-done:
//	}
//
// The library's lost fd is watched by one goroutine for all locks and
// waits of the process (epoll on Linux), not by a thread per lock.
func (k *Lock) Lost() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lost != nil {
		return k.lost
	}
	k.lost = make(chan struct{})
	if k.handle == 0 {
		return k.lost
	}
	fd := int(C.go_lost_fd(k.handle))
	k.stop = watchLost(fd, k.lost, k.Check)
	return k.lost
}

// LogLevel is the level of a message of the library (TURN_LOG_*).
type LogLevel int

// The levels of the library's messages.
const (
	LogError LogLevel = 1 // something failed (a background thread was restarted)
	LogWarn  LogLevel = 2 // something may go wrong (a slow heartbeat: locks may be lost)
	LogInfo  LogLevel = 3
	LogDebug LogLevel = 4
)

func (l LogLevel) String() string {
	switch l {
	case LogError:
		return "error"
	case LogWarn:
		return "warn"
	case LogInfo:
		return "info"
	case LogDebug:
		return "debug"
	}
	return "level " + strconv.Itoa(int(l))
}

var (
	logMu sync.RWMutex
	logFn func(LogLevel, string)
)

// SetLogFunc sends every message the library would write on standard error
// (a slow heartbeat, a background thread restarted) to f instead,
// process-wide, with its level and without a trailing newline; nil gives
// them back to standard error. Messages never contain a password.
//
// f may be called from any goroutine and from the library's own threads,
// several at once; it should return soon (on a locker's heartbeat thread,
// time spent in f delays that locker's lease renewals), it must not close a
// Locker, and a panic in it is recovered and ignored. When SetLogFunc
// returns, the f it replaced is no longer running (unless SetLogFunc is
// called from f itself).
func SetLogFunc(f func(level LogLevel, message string)) error {
	if f == nil {
		err := call(func() C.turn_result { return C.go_set_log_callback(0) })
		logMu.Lock()
		logFn = nil
		logMu.Unlock()
		return err
	}
	logMu.Lock()
	logFn = f
	logMu.Unlock()
	return call(func() C.turn_result { return C.go_set_log_callback(1) })
}

// Status reads the queue of resource, as StatusContext with
// context.Background().
//
// Deprecated: the form without a context, kept for one release for the
// programs written for it; use StatusContext.
func (l *Locker) Status(resource string) (*Status, error) {
	return l.StatusContext(context.Background(), resource)
}

// Reset removes the queue of resource when idle, as ResetContext with
// context.Background().
//
// Deprecated: the form without a context, kept for one release for the
// programs written for it; use ResetContext.
func (l *Locker) Reset(resource string) error {
	return l.ResetContext(context.Background(), resource)
}

// Bump moves the indicator of resource past dead tickets, as BumpContext
// with context.Background().
//
// Deprecated: the form without a context, kept for one release for the
// programs written for it; use BumpContext.
func (l *Locker) Bump(resource string) (uint64, error) {
	return l.BumpContext(context.Background(), resource)
}
