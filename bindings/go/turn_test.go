package turn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests run against the redis-server named by TURN_TEST_REDIS_URL
// (tests/bindings.rs starts one on a free port and sets it).
func newLocker(t *testing.T) *Locker {
	t.Helper()
	url := os.Getenv("TURN_TEST_REDIS_URL")
	if url == "" {
		t.Skip("TURN_TEST_REDIS_URL is not set: these tests need a redis-server (`make test` starts one)")
	}
	l, err := NewLocker(url, Prefix(fmt.Sprintf("go-%s", t.Name())))
	if err != nil {
		t.Fatalf("NewLocker: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLockUnlockAndSerials(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	var last, lastToken uint64
	for i := 0; i < 3; i++ {
		lock, err := l.Lock(ctx, "r", Label("go"))
		if err != nil {
			t.Fatal(err)
		}
		if last != 0 && lock.Serial() != last+1 {
			t.Fatalf("serial %d after %d", lock.Serial(), last)
		}
		if lock.Token() <= lastToken {
			t.Fatalf("token %d after %d", lock.Token(), lastToken)
		}
		last, lastToken = lock.Serial(), lock.Token()
		if err := l.Health(); err != nil {
			t.Fatal(err)
		}
		if err := lock.Check(); err != nil {
			t.Fatal(err)
		}
		if err := lock.Unlock(); err != nil {
			t.Fatal(err)
		}
		if err := lock.Unlock(); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("second unlock: %v", err)
		}
	}
}

func TestGoroutinesExcludeEachOther(t *testing.T) {
	l := newLocker(t)
	var inside, overlaps, turns int32
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				lock, err := l.Lock(context.Background(), "shared", Label(fmt.Sprint("g", g)))
				if err != nil {
					t.Error(err)
					return
				}
				if atomic.AddInt32(&inside, 1) != 1 {
					atomic.AddInt32(&overlaps, 1)
				}
				time.Sleep(100 * time.Microsecond)
				atomic.AddInt32(&inside, -1)
				atomic.AddInt32(&turns, 1)
				if err := lock.Unlock(); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	if overlaps != 0 || turns != 240 {
		t.Fatalf("overlaps %d, turns %d", overlaps, turns)
	}
}

func TestContextEndsTheWaitAndLeavesNoTrace(t *testing.T) {
	l := newLocker(t)
	held, err := l.Lock(context.Background(), "r", Label("holder"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err = l.Lock(ctx, "r", Label("canceled"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}

	ctx, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	_, err = l.Lock(ctx, "r", Label("deadline"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}

	_, err = l.Lock(context.Background(), "r", Try())
	if !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("try: %v", err)
	}
	// A wait that ended at its deadline is withdrawn by the locker's
	// notifier thread right after (ending it never waits on a round trip).
	waitQueued(t, l, "r", 1)
	s, err := l.StatusContext(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tickets) != 1 || s.Tickets[0].Label != "holder" {
		t.Fatalf("tickets left behind: %+v", s.Tickets)
	}
}

func TestErrorsAndTools(t *testing.T) {
	l := newLocker(t)
	if _, err := l.Lock(context.Background(), ""); !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrClosed) {
		t.Fatalf("empty resource: %v", err)
	}
	if errors.Is(ErrClosed, ErrInvalidArgument) || errors.Is(ErrInvalidArgument, ErrClosed) {
		t.Fatal("ErrClosed is not distinct")
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.StatusContext(done, "r"); !errors.Is(err, context.Canceled) {
		t.Fatalf("status with a done context: %v", err)
	}
	if _, err := l.StatusContext(context.Background(), "none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status of nothing: %v", err)
	}
	lock, err := l.Lock(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ResetContext(context.Background(), "r"); !errors.Is(err, ErrBusy) {
		t.Fatalf("reset busy: %v", err)
	}
	if ind, err := l.BumpContext(context.Background(), "r"); err != nil || ind != 1 {
		t.Fatalf("bump: %d %v", ind, err)
	}
	lock.Unlock()
	if err := l.ResetContext(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocker("bogus://"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad url: %v", err)
	}
	if _, err := NewLocker(os.Getenv("TURN_TEST_REDIS_URL"), TLS("/nonexistent/ca.pem", "", "")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("TLS files with a redis:// URL: %v", err)
	}
	l.Close()
	if _, err := l.Lock(context.Background(), "r"); !errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("after close: %v", err)
	}
	if _, err := l.StatusContext(context.Background(), "r"); !errors.Is(err, ErrClosed) {
		t.Fatalf("status after close: %v", err)
	}
}

func TestMinReplicas(t *testing.T) {
	url := os.Getenv("TURN_TEST_REDIS_URL")
	if url == "" {
		t.Skip("TURN_TEST_REDIS_URL is not set: these tests need a redis-server (`make test` starts one)")
	}
	// One server has no replica: 0 turns replica confirmation off.
	l, err := NewLocker(url, Prefix("go-"+t.Name()), MinReplicas(0, 0))
	if err != nil {
		t.Fatalf("MinReplicas(0, 0): %v", err)
	}
	defer l.Close()
	lock, err := l.Lock(context.Background(), "r", Label("no replicas"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		replicas uint32
		timeout  time.Duration
	}{
		{1, 0},
		{1, 500 * time.Microsecond}, // whole milliseconds: 0
		{1, -time.Second},
		{1, 5 * time.Second}, // not below the command timeout
	} {
		if _, err := NewLocker(url, MinReplicas(bad.replicas, bad.timeout)); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("MinReplicas(%d, %v): %v", bad.replicas, bad.timeout, err)
		}
	}
}

func TestSemaphoreAdmitsHoldersWhileTheirWeightsFit(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	a, err := l.Semaphore(ctx, "sem", 2, 1, Label("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Semaphore(ctx, "sem", 2, 1, Label("b"), Try())
	if err != nil {
		t.Fatalf("a second holder of 2 permits: %v", err)
	}
	if a.Check() != nil || b.Check() != nil || b.Token() <= a.Token() {
		t.Fatalf("two holders: %v %v, tokens %d %d", a.Check(), b.Check(), a.Token(), b.Token())
	}
	if _, err := l.Semaphore(ctx, "sem", 2, 1, Label("c"), Try()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("a third holder of 2 permits: %v", err)
	}
	a.Unlock()
	c, err := l.Semaphore(ctx, "sem", 2, 1, Label("c"), Try())
	if err != nil {
		t.Fatalf("a permit given back: %v", err)
	}
	b.Unlock()
	c.Unlock()

	two, err := l.Semaphore(ctx, "sem-3", 3, 2, Label("two"))
	if err != nil {
		t.Fatal(err)
	}
	defer two.Unlock()
	if _, err := l.Semaphore(ctx, "sem-3", 3, 2, Try()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("weight 2 beside weight 2 of 3: %v", err)
	}
	for _, bad := range [][2]uint32{{0, 0}, {0, 1}, {2, 0}, {2, 3}} {
		if _, err := l.Semaphore(ctx, "sem", bad[0], bad[1]); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("permits %d, weight %d: %v", bad[0], bad[1], err)
		}
	}
}

func TestSemaphoreWaiterHoldsBackALaterSmallerOne(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	holder, err := l.Semaphore(ctx, "sem", 3, 2, Label("holder"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		lock, err := l.Semaphore(ctx, "sem", 3, 2, Label("waiter"))
		if err == nil {
			err = lock.Unlock()
		}
		got <- err
	}()
	waitQueued(t, l, "sem", 2)
	// One permit is free, but the waiter drawn before comes first.
	if _, err := l.Semaphore(ctx, "sem", 3, 1, Label("small"), Try()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("a later, smaller ticket passed the waiter: %v", err)
	}
	holder.Unlock()
	if err := <-got; err != nil {
		t.Fatalf("the waiter: %v", err)
	}
}

func TestReadersShareAndAWriterHoldsAloneInDrawOrder(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	r1, err := l.ReadLock(ctx, "rw", Label("reader 1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.ReadLock(ctx, "rw", Label("reader 2"), Try())
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	if _, err := l.WriteLock(ctx, "rw", Try()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("a writer beside readers: %v", err)
	}
	writer := make(chan *Lock, 1)
	go func() {
		w, err := l.WriteLock(ctx, "rw", Label("writer"))
		if err != nil {
			t.Error(err)
		}
		writer <- w
	}()
	waitQueued(t, l, "rw", 3)
	// A reader drawn after the waiting writer waits for it.
	if _, err := l.ReadLock(ctx, "rw", Label("late reader"), Try()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("a reader passed a waiting writer: %v", err)
	}
	waiting, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	if _, err := l.ReadLock(waiting, "rw", Label("canceled")); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
		t.Fatalf("a canceled reader: %v", err)
	}
	r1.Unlock()
	r2.Unlock()
	w := <-writer
	if w == nil {
		t.FailNow()
	}
	if _, err := l.ReadLock(ctx, "rw", Try()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("a reader beside the writer: %v", err)
	}
	if err := w.Unlock(); err != nil {
		t.Fatal(err)
	}
	r, err := l.ReadLock(ctx, "rw", Try())
	if err != nil {
		t.Fatalf("a reader after the writer: %v", err)
	}
	r.Unlock()
}

func TestAQueueKeepsItsKindUntilReset(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	sem, err := l.Semaphore(ctx, "sem", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := l.WriteLock(ctx, "rw")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := l.Lock(ctx, "plain")
	if err != nil {
		t.Fatal(err)
	}
	for name, try := range map[string]func() (*Lock, error){
		"plain on a semaphore":       func() (*Lock, error) { return l.Lock(ctx, "sem", Try()) },
		"other permits":              func() (*Lock, error) { return l.Semaphore(ctx, "sem", 3, 1, Try()) },
		"a reader on a semaphore":    func() (*Lock, error) { return l.ReadLock(ctx, "sem", Try()) },
		"plain on a read-write lock": func() (*Lock, error) { return l.Lock(ctx, "rw", Try()) },
		"a semaphore on a rwlock":    func() (*Lock, error) { return l.Semaphore(ctx, "rw", 2, 1, Try()) },
		"a writer on a plain lock":   func() (*Lock, error) { return l.WriteLock(ctx, "plain", Try()) },
		"a waiting semaphore ticket": func() (*Lock, error) { return l.Semaphore(ctx, "plain", 2, 1) },
	} {
		if _, err := try(); !errors.Is(err, ErrWrongKind) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	sem.Unlock()
	rw.Unlock()
	plain.Unlock()
	if _, err := l.Lock(ctx, "sem", Try()); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("plain on an idle semaphore: %v", err)
	}
	if err := l.ResetContext(ctx, "sem"); err != nil {
		t.Fatal(err)
	}
	lock, err := l.Lock(ctx, "sem", Try())
	if err != nil {
		t.Fatalf("plain after a reset: %v", err)
	}
	lock.Unlock()
}

func TestLockAllReturnsTheLocksInTheCallersOrderOrNone(t *testing.T) {
	l := newLocker(t)
	other := newLocker(t)
	ctx := context.Background()
	// Queues whose next serials tell the locks apart: c 3, a 2, b 1.
	for _, r := range []string{"a", "c", "c"} {
		lock, err := l.Lock(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		lock.Unlock()
	}
	locks, err := l.LockAll(ctx, []string{"c", "a", "b"}, Label("all"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{3, 2, 1} {
		if locks[i].Serial() != want || locks[i].Check() != nil || locks[i].Token() == 0 {
			t.Fatalf("lock %d: serial %d (want %d), %v", i, locks[i].Serial(), want, locks[i].Check())
		}
		if _, err := other.Lock(ctx, []string{"c", "a", "b"}[i], Try()); !errors.Is(err, ErrWouldBlock) {
			t.Fatalf("lock %d not held: %v", i, err)
		}
	}
	for _, lock := range locks {
		if err := lock.Unlock(); err != nil {
			t.Fatal(err)
		}
	}

	// c is busy: the deadline ends the call, and a is free again at once.
	busy, err := other.Lock(ctx, "c", Label("busy"))
	if err != nil {
		t.Fatal(err)
	}
	deadline, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = l.LockAll(deadline, []string{"c", "a", "b"})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a busy resource within a deadline: %v", err)
	}
	if _, err := l.LockAll(ctx, []string{"a", "c"}, Try()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("a busy resource with Try: %v", err)
	}
	canceled, cancel2 := context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); cancel2() }()
	if _, err := l.LockAll(canceled, []string{"a", "c"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a canceled call: %v", err)
	}
	a, err := other.Lock(ctx, "a", Try())
	if err != nil {
		t.Fatalf("a after the failed calls: %v", err)
	}
	a.Unlock()
	busy.Unlock()

	many := make([]string, MaxAllResources+1)
	for i := range many {
		many[i] = fmt.Sprint("r", i)
	}
	for _, bad := range [][]string{nil, many, {"x", "y", "x"}} {
		if _, err := l.LockAll(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("LockAll(%d names): %v", len(bad), err)
		}
	}
}
