package turn

import (
	"context"
	"errors"
	"testing"
)

// The forms without a context, as programs written for them call them,
// still build and behave as the context forms with context.Background().
func TestDeprecatedFormsWithoutAContext(t *testing.T) {
	l := newLocker(t)
	lock, err := l.Lock(context.Background(), "old-forms", Label("holder"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Status("old-forms")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tickets) != 1 || s.Tickets[0].Label != "holder" || !s.Tickets[0].Held {
		t.Fatalf("status: %+v", s.Tickets)
	}
	if err := l.Reset("old-forms"); !errors.Is(err, ErrBusy) {
		t.Fatalf("reset of a held queue: %v", err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	if ind, err := l.Bump("old-forms"); err != nil || ind != 2 {
		t.Fatalf("bump: %d, %v", ind, err)
	}
	if err := l.Reset("old-forms"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Status("old-forms"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status after the reset: %v", err)
	}
}
