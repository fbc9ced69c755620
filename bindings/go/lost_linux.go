package turn

import (
	"sync"
	"syscall"
)

// lostWatcher watches the lost fds of every lock of the process that was
// asked for Lost(), with one epoll instance and one goroutine (so one OS
// thread blocked in epoll_wait, however many locks are watched).
type lostWatcher struct {
	once    sync.Once
	err     error
	epfd    int
	mu      sync.Mutex
	next    int32
	watched map[int32]lostWatch
}

// lostWatch is one watched lock: its lost fd and the channel to close.
type lostWatch struct {
	fd int
	ch chan struct{}
}

var watcher lostWatcher

func (w *lostWatcher) start() error {
	w.once.Do(func() {
		w.epfd, w.err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if w.err == nil {
			w.watched = make(map[int32]lostWatch)
			go w.loop()
		}
	})
	return w.err
}

// add watches fd; events name the watch by a number of its own, never by
// the fd, so that an event read just before the watch ended can never be
// taken for a later lock's whose fd got the same number.
func (w *lostWatcher) add(fd int, ch chan struct{}) (int32, error) {
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
	w.watched[id] = lostWatch{fd, ch}
	return id, nil
}

// remove ends a watch (before the lock's release closes its fd).
func (w *lostWatcher) remove(id int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if lw, ok := w.watched[id]; ok {
		delete(w.watched, id)
		syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, lw.fd, nil)
	}
}

func (w *lostWatcher) loop() {
	events := make([]syscall.EpollEvent, 64)
	for {
		n, err := syscall.EpollWait(w.epfd, events, -1)
		if err != nil {
			continue // EINTR
		}
		w.mu.Lock()
		for _, ev := range events[:n] {
			// The fd is level-triggered and stays readable: take it out.
			if lw, ok := w.watched[ev.Fd]; ok {
				delete(w.watched, ev.Fd)
				syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, lw.fd, nil)
				close(lw.ch)
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
