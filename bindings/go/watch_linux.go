package turn

import (
	"sync"
	"syscall"
)

// fdWatcher watches the library's fds that Go code waits on (the lost fd
// of every lock asked for Lost(), the fd of every pending acquire) with one
// epoll instance and one goroutine: one OS thread blocked in epoll_wait,
// however many locks and waits are watched.
type fdWatcher struct {
	once    sync.Once
	err     error
	epfd    int
	mu      sync.Mutex
	next    int32
	watched map[int32]fdWatch
}

// fdWatch is one watched fd and the channel to close once it is readable.
type fdWatch struct {
	fd int
	ch chan struct{}
}

var watcher fdWatcher

func (w *fdWatcher) start() error {
	w.once.Do(func() {
		w.epfd, w.err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if w.err == nil {
			w.watched = make(map[int32]fdWatch)
			go w.loop()
		}
	})
	return w.err
}

// add watches fd; events name the watch by a number of its own, never by
// the fd, so that an event read just before the watch ended can never be
// taken for a later watch whose fd got the same number.
func (w *fdWatcher) add(fd int, ch chan struct{}) (int32, error) {
	if err := w.start(); err != nil {
		return 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next++
	if w.next <= 0 {
		w.next = 1
	}
	id := w.next
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: id}
	if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return 0, err
	}
	w.watched[id] = fdWatch{fd, ch}
	return id, nil
}

// remove ends a watch (before the library closes its fd: a release, the
// end of a pending acquire). Once it returns, the fd is out of the epoll
// set and its channel is no longer touched.
func (w *fdWatcher) remove(id int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fw, ok := w.watched[id]; ok {
		delete(w.watched, id)
		syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, fw.fd, nil)
	}
}

func (w *fdWatcher) loop() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(w.epfd, events, -1)
		if err != nil {
			continue // EINTR
		}
		w.mu.Lock()
		for _, ev := range events[:n] {
			// The fds are level-triggered and stay readable: take it out.
			if fw, ok := w.watched[ev.Fd]; ok {
				delete(w.watched, ev.Fd)
				syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, fw.fd, nil)
				close(fw.ch)
			}
		}
		w.mu.Unlock()
	}
}

// watchLost closes ch once fd turns readable; the function it returns ends
// the watch. Without an fd (or epoll), it falls back to polling check.
func watchLost(fd int, ch chan struct{}, check func() error) func() {
	if fd >= 0 {
		if id, err := watcher.add(fd, ch); err == nil {
			return func() { watcher.remove(id) }
		}
	}
	return pollLost(ch, check)
}

// watchReadable returns a channel closed once fd turns readable, and the
// function that ends the watch (call it before the fd may be closed).
// Without an fd (or epoll), the channel is closed after a short while
// instead, for the caller to look again (see pollSoon).
func watchReadable(fd int) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	if fd >= 0 {
		if id, err := watcher.add(fd, ch); err == nil {
			return ch, func() { watcher.remove(id) }
		}
	}
	return pollSoon(ch)
}
