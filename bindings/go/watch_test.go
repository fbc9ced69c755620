package turn

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// queued waits until resource has n live tickets.
func queued(t *testing.T, l *Locker, resource string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := l.StatusContext(context.Background(), resource)
		if err == nil && len(s.Tickets) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never %d tickets (%v, %v)", resource, n, s, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsCountAcquiresAsValuesAndAsText(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	m, err := l.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.AcquiredAtOnce != 0 || m.Wait.Count != 0 || !strings.Contains(m.Text, "# TYPE turn_acquires_total counter") {
		t.Fatalf("a new locker: %+v", m)
	}
	held, err := l.Lock(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Lock(ctx, "m", Try()); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("try: %v", err)
	}
	done := make(chan error)
	go func() {
		lock, err := l.Lock(ctx, "m")
		if err == nil {
			err = lock.Unlock()
		}
		done <- err
	}()
	queued(t, l, "m", 2)
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m, err = l.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.AcquiredAtOnce != 1 || m.AcquiredAfterWaiting != 1 || m.WouldBlock != 1 || m.Lost != 0 {
		t.Fatalf("counters: %+v", m)
	}
	if m.Handoffs != 1 {
		t.Fatalf("one hand-off: %+v", m)
	}
	if m.Wait.Count != 2 || m.Hold.Count != 2 || len(m.Wait.Buckets) != 12 || len(m.Hold.Buckets) != 12 {
		t.Fatalf("histograms: %+v %+v", m.Wait, m.Hold)
	}
	last := m.Wait.Buckets[len(m.Wait.Buckets)-1]
	if last.UpperBound != 300*time.Second || last.Count != 2 || m.Wait.Buckets[0].UpperBound != time.Millisecond {
		t.Fatalf("wait buckets: %+v", m.Wait.Buckets)
	}
	for _, want := range []string{
		`turn_acquires_total{granted="at_once"} 1`,
		`turn_acquires_total{granted="after_waiting"} 1`,
		`turn_acquire_failures_total{reason="would_block"} 1`,
		"turn_wait_seconds_count 2",
	} {
		if !strings.Contains(m.Text, want+"\n") {
			t.Fatalf("no %q in\n%s", want, m.Text)
		}
	}
}

func TestStatusTellsHoldersAndWaitersApartWithTheirFacts(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	held, err := l.Lock(ctx, "printer", Label("holder"), Expire(8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		lock, err := l.Lock(ctx, "printer", Label("waiter"))
		if err == nil {
			err = lock.Unlock()
		}
		done <- err
	}()
	queued(t, l, "printer", 2)
	time.Sleep(200 * time.Millisecond)
	s, err := l.StatusContext(ctx, "printer")
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != KindPlain || s.Permits != 0 {
		t.Fatalf("kind: %+v", s)
	}
	h, w := s.Tickets[0], s.Tickets[1]
	if !h.Held || !h.Ours || h.Token != held.Token() || h.Position != 0 || !h.Exclusive || h.Weight != 1 {
		t.Fatalf("holder: %+v", h)
	}
	if h.HeldFor < 200*time.Millisecond || h.WaitedFor != 0 || h.LeaseLeft <= 0 || h.LeaseLeft > 8*time.Second {
		t.Fatalf("holder's times: %+v", h)
	}
	if w.Held || !w.Ours || w.Token <= held.Token() || w.Position != 1 || w.Label != "waiter" {
		t.Fatalf("waiter: %+v", w)
	}
	if w.WaitedFor < 200*time.Millisecond || w.HeldFor != 0 || w.LeaseLeft <= 0 {
		t.Fatalf("waiter's times: %+v", w)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	sem, err := l.Semaphore(ctx, "pool", 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer sem.Unlock()
	s, err = l.StatusContext(ctx, "pool")
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != KindSemaphore || s.Permits != 3 || s.Tickets[0].Weight != 2 || s.Tickets[0].Exclusive {
		t.Fatalf("semaphore: %+v", s)
	}
}

func TestAWaitingLockHearsHowManyAreAheadThroughOnPosition(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	first, err := l.Lock(ctx, "line", Label("first"))
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan *Lock, 1)
	go func() {
		lock, err := l.Lock(ctx, "line", Label("second"))
		if err != nil {
			t.Error(err)
		}
		second <- lock
	}()
	queued(t, l, "line", 2)
	var mu sync.Mutex
	var heard []uint64
	var once sync.Once
	lock, err := l.Lock(ctx, "line", Label("third"), OnPosition(func(ahead uint64) {
		mu.Lock()
		heard = append(heard, ahead)
		mu.Unlock()
		// Told of its place, the first goes; then the second.
		once.Do(func() {
			go func() {
				first.Unlock()
				(<-second).Unlock()
			}()
		})
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(heard) == 0 || heard[0] != 2 {
		t.Fatalf("heard %v, first 2 ahead", heard)
	}
	for i := 1; i < len(heard); i++ {
		if heard[i] >= heard[i-1] || heard[i] == 0 {
			t.Fatalf("heard %v: only fewer ahead, never 0", heard)
		}
	}
	// Taken at once: never called.
	free, err := l.Lock(ctx, "free", OnPosition(func(uint64) { t.Error("called for a free lock") }))
	if err != nil {
		t.Fatal(err)
	}
	free.Unlock()
}
