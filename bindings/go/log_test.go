package turn

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// A slow beat (the server paused with CLIENT PAUSE while a lock with a
// 1.5 s lease is held) comes to the function of SetLogFunc as a warning.
func TestSetLogFuncGetsTheSlowBeatWarning(t *testing.T) {
	l := newLocker(t)
	var mu sync.Mutex
	var got []string
	warned := make(chan struct{}, 1)
	if err := SetLogFunc(func(level LogLevel, message string) {
		mu.Lock()
		got = append(got, level.String()+": "+message)
		mu.Unlock()
		if level <= LogWarn {
			select {
			case warned <- struct{}{}:
			default:
			}
		}
		panic("recovered by the binding")
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := SetLogFunc(nil); err != nil {
			t.Error(err)
		}
	})
	lock, err := l.Lock(context.Background(), "log", Label("held"), Expire(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	// Beats come every 500 ms, the first 500 ms after the grant: pause
	// half-way to it, and again (off the beat) until one is slower than a
	// third of the lease.
	time.Sleep(250 * time.Millisecond)
pauses:
	for i := 0; i < 8; i++ {
		if reply := redisDo(t, "CLIENT", "PAUSE", "900"); reply != "+OK" {
			t.Fatalf("CLIENT PAUSE: %s", reply)
		}
		select {
		case <-warned:
			break pauses
		case <-time.After(2650 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("no message from the library")
	}
	if !strings.HasPrefix(got[0], "warn: ") || !strings.Contains(got[0], "heartbeat is too slow") ||
		strings.HasSuffix(got[0], "\n") {
		t.Fatalf("first message: %q", got[0])
	}
}

func TestLogLevelNames(t *testing.T) {
	for level, name := range map[LogLevel]string{
		LogError: "error", LogWarn: "warn", LogInfo: "info", LogDebug: "debug", 9: "level 9",
	} {
		if level.String() != name {
			t.Errorf("%d: %q", int(level), level.String())
		}
	}
}
