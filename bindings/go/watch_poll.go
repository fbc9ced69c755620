package turn

import (
	"errors"
	"time"
)

// pollLost closes ch once check reports the lock lost, checking every
// 100 ms on a goroutine (no thread: a timer), until the returned function
// is called. The fallback where the lost fd cannot be watched.
func pollLost(ch chan struct{}, check func() error) func() {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				err := check()
				if errors.Is(err, ErrLost) {
					close(ch)
					return
				}
				if err != nil {
					return // unlocked meanwhile
				}
			}
		}
	}()
	return func() { close(done) }
}

// pollSoon closes ch after 20 ms on a timer (no thread), unless the
// returned function is called first: the fallback where an fd cannot be
// watched, for a caller that then looks again (a pending acquire's
// outcome: turn_pending_finish answers TURN_ERR_WOULD_BLOCK until known).
func pollSoon(ch chan struct{}) (<-chan struct{}, func()) {
	t := time.AfterFunc(20*time.Millisecond, func() { close(ch) })
	return ch, func() { t.Stop() }
}
