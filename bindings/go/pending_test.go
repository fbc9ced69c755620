package turn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// osThreads is the Threads line of /proc/self/status: the OS threads of
// this process now (Go's, the library's, cgo's); -1 where there is none.
func osThreads() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := s.Text(); strings.HasPrefix(line, "Threads:") {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "Threads:")))
			return n
		}
	}
	return -1
}

// waitQueued waits until resource has n live tickets.
func waitQueued(t *testing.T, l *Locker, resource string, n int) {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if s, err := l.StatusContext(context.Background(), resource); err == nil && len(s.Tickets) == n {
			return
		}
	}
	t.Fatalf("%s: never %d tickets", resource, n)
}

const threadsChild = "TURN_TEST_THREADS_CHILD"

// 1,000 goroutines waiting on one resource hold a handful of OS threads,
// and are all served in ticket order. Go never gives back an OS thread it
// made, so the count is taken in a process of its own (this test binary
// run again for this test alone), where earlier tests' threads do not
// count.
func TestThousandWaitersUseAHandfulOfThreads(t *testing.T) {
	if os.Getenv(threadsChild) == "" {
		newLocker(t) // skips without a server
		cmd := exec.Command(os.Args[0], "-test.run=^TestThousandWaitersUseAHandfulOfThreads$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), threadsChild+"=1")
		out, err := cmd.CombinedOutput()
		fmt.Printf("%s", out)
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("the child process: %v", err)
		}
		return
	}
	const n = 1000
	const bound = 20
	l := newLocker(t)
	ctx := context.Background()
	holder, err := l.Lock(ctx, "crowd", Label("holder"))
	if err != nil {
		t.Fatal(err)
	}
	before, made := osThreads(), pprof.Lookup("threadcreate").Count()
	served := make(chan uint64, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	started := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			lock, err := l.Lock(ctx, "crowd", Label(fmt.Sprint("g", i)))
			if err != nil {
				errs <- err
				return
			}
			served <- lock.Serial() // while held: the channel has the order of service
			if err := lock.Unlock(); err != nil {
				errs <- err
			}
		}(i)
	}
	waitQueued(t, l, "crowd", n+1)
	waiting := osThreads()
	fmt.Printf("%d goroutines waiting on one resource: %d OS threads (%d before they started; threadcreate %d -> %d); drawn in %v\n",
		n, waiting, before, made, pprof.Lookup("threadcreate").Count(), time.Since(started))
	if waiting < 0 {
		t.Skip("no /proc/self/status")
	}
	if waiting > bound {
		t.Errorf("%d OS threads while %d goroutines wait (bound %d)", waiting, n, bound)
	}
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(served)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var last uint64 = 1 // the holder's
	count := 0
	for s := range served {
		if s <= last {
			t.Fatalf("served %d after %d: not in ticket order", s, last)
		}
		last = s
		count++
	}
	if count != n || last != n+1 {
		t.Fatalf("served %d, the last %d", count, last)
	}
	fmt.Printf("all %d served in ticket order in %v; %d OS threads at the end\n", n, time.Since(started), osThreads())
}

// Contexts end pending waits: canceled ones withdraw their tickets (also
// one whose turn came meanwhile), the others are served in ticket order,
// and nothing is left in the queue.
func TestContextCancelWithdrawsWaitingTickets(t *testing.T) {
	l := newLocker(t)
	bg := context.Background()
	holder, err := l.Lock(bg, "ctx", Label("holder"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	type outcome struct {
		i      int
		serial uint64
		err    error
	}
	results := make(chan outcome, n)
	cancels := make([]context.CancelFunc, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithCancel(bg)
		cancels[i] = cancel
		wg.Add(1)
		go func(i int, ctx context.Context) {
			defer wg.Done()
			lock, err := l.Lock(ctx, "ctx", Label(fmt.Sprint("g", i)))
			if err != nil {
				results <- outcome{i, 0, err}
				return
			}
			results <- outcome{i, lock.Serial(), nil}
			// The next one (odd) is canceled as this one lets go: the
			// turn may reach it before its withdrawal, and is handed on.
			if i+1 < n && (i+1)%4 == 3 {
				cancels[i+1]()
			}
			lock.Unlock()
		}(i, ctx)
		waitQueued(t, l, "ctx", i+2) // draws in the order of i
	}
	for i := 1; i < n; i += 4 {
		cancels[i]() // while waiting, before the holder lets go
	}
	holder.Unlock()
	wg.Wait()
	close(results)
	var last uint64 = 1
	canceled := 0
	for r := range results {
		if r.err != nil {
			if !errors.Is(r.err, context.Canceled) || !errors.Is(r.err, ErrCanceled) || r.i%2 == 0 {
				t.Fatalf("goroutine %d: %v", r.i, r.err)
			}
			canceled++
			continue
		}
		if r.i%2 != 0 || r.serial != uint64(r.i)+2 || r.serial <= last {
			t.Fatalf("goroutine %d served with serial %d after %d", r.i, r.serial, last)
		}
		last = r.serial
	}
	if canceled != n/2 {
		t.Fatalf("%d canceled", canceled)
	}
	// A wait canceled while the notifier thread stepped it is withdrawn as
	// that step ends (canceling never waits on a round trip).
	waitQueued(t, l, "ctx", 0)
	s, err := l.StatusContext(bg, "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tickets) != 0 || s.Indicator != n+2 {
		t.Fatalf("left behind: %+v", s)
	}
	for _, c := range cancels {
		c()
	}
}

// Closing the locker ends the waits with ErrCanceled.
func TestCloseEndsPendingWaits(t *testing.T) {
	l := newLocker(t)
	holder, err := l.Lock(context.Background(), "closing", Label("holder"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Lock(context.Background(), "closing", Label("waiter"))
		done <- err
	}()
	waitQueued(t, l, "closing", 2)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrCanceled) {
			t.Fatalf("wait ended by Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not end the wait")
	}
	holder.Unlock()
}
