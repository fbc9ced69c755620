//go:build !linux

package turn

// watchLost closes ch once the lock is lost: without epoll, by polling
// check (see pollLost).
func watchLost(fd int, ch chan struct{}, check func() error) func() {
	return pollLost(ch, check)
}

// watchReadable: without epoll, a channel closed after a short while, for
// the caller to look again (see pollSoon). No thread waits meanwhile.
func watchReadable(fd int) (<-chan struct{}, func()) {
	return pollSoon(make(chan struct{}))
}
