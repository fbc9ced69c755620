//go:build !linux

package turn

// watchLost closes ch once the lock is lost: without epoll, by polling
// check (see pollLost).
func watchLost(fd int, ch chan struct{}, check func() error) func() {
	return pollLost(ch, check)
}
