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
