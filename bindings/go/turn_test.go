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
	s, err := l.Status(context.Background(), "r")
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
	if _, err := l.Status(done, "r"); !errors.Is(err, context.Canceled) {
		t.Fatalf("status with a done context: %v", err)
	}
	if _, err := l.Status(context.Background(), "none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status of nothing: %v", err)
	}
	lock, err := l.Lock(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(context.Background(), "r"); !errors.Is(err, ErrBusy) {
		t.Fatalf("reset busy: %v", err)
	}
	if ind, err := l.Bump(context.Background(), "r"); err != nil || ind != 1 {
		t.Fatalf("bump: %d %v", ind, err)
	}
	lock.Unlock()
	if err := l.Reset(context.Background(), "r"); err != nil {
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
	if _, err := l.Status(context.Background(), "r"); !errors.Is(err, ErrClosed) {
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
