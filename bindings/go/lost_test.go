package turn

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// redisDo sends one command on a raw connection (the tests use no client
// library) and returns the first line of the reply.
func redisDo(t *testing.T, args ...string) string {
	t.Helper()
	addr := strings.TrimPrefix(os.Getenv("TURN_TEST_REDIS_URL"), "redis://")
	addr = strings.SplitN(addr, "/", 2)[0]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		cmd += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func TestLostIsClosedWhenThePresenceKeyIsDeleted(t *testing.T) {
	l := newLocker(t)
	lock, err := l.Lock(context.Background(), "r", Label("go"), Expire(600*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	lost := lock.Lost()
	if lock.Lost() != lost {
		t.Fatal("Lost returned another channel")
	}
	select {
	case <-lost:
		t.Fatal("closed while held")
	default:
	}
	key := fmt.Sprintf("go-%s:r:serial:%d", t.Name(), lock.Serial())
	if got := redisDo(t, "DEL", key); got != ":1" {
		t.Fatalf("DEL %s: %s", key, got)
	}
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("Lost not closed after the presence key was deleted")
	}
	if err := lock.Check(); err == nil {
		t.Fatal("Check is nil after Lost closed")
	}
	if err := lock.Unlock(); err == nil {
		t.Fatal("Unlock of a lost lock is nil")
	}
}

func TestLostStaysOpenForALockHeldNormally(t *testing.T) {
	l := newLocker(t)
	// Renewed every 500 ms: three seconds are six renewals.
	lock, err := l.Lock(context.Background(), "r", Label("go"), Expire(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	lost := lock.Lost()
	select {
	case <-lost:
		t.Fatal("closed while held")
	case <-time.After(3 * time.Second):
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
		t.Fatal("closed by a normal unlock")
	case <-time.After(200 * time.Millisecond):
	}
}

// Many watched locks share one watcher: the process makes a handful of
// threads, not one per lock; closing the locker loses (and closes) them all.
func TestManyLostChannelsShareOneWatcher(t *testing.T) {
	l := newLocker(t)
	ctx := context.Background()
	threads := pprof.Lookup("threadcreate")
	var locks []*Lock
	for i := 0; i < 64; i++ {
		lock, err := l.Lock(ctx, fmt.Sprintf("r%d", i), Label("go"))
		if err != nil {
			t.Fatal(err)
		}
		locks = append(locks, lock)
	}
	before := threads.Count()
	for _, lock := range locks {
		lock.Lost()
	}
	time.Sleep(200 * time.Millisecond)
	grown := threads.Count() - before
	t.Logf("threads made while 64 locks are watched: %d", grown)
	if grown > 8 {
		t.Fatalf("%d threads made to watch 64 locks", grown)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for i, lock := range locks {
		select {
		case <-lock.Lost():
		case <-time.After(30 * time.Second):
			t.Fatalf("lock %d: Lost not closed after the locker closed", i)
		}
		lock.Unlock()
	}
}
