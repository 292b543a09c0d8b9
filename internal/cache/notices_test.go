package cache

import (
	"testing"
	"time"
)

func TestNoticeIsDueOncePerPeriodPerKey(t *testing.T) {
	now := time.Unix(1800000000, 0)
	board := NewNoticeBoard(func() time.Time { return now })
	if !board.Due("a", time.Hour) {
		t.Fatal("a first notice was not due")
	}
	if board.Due("a", time.Hour) {
		t.Error("the same notice was due twice at once")
	}
	if !board.Due("b", time.Hour) {
		t.Error("another key's notice was held back")
	}
	now = now.Add(59 * time.Minute)
	if board.Due("a", time.Hour) {
		t.Error("due again after 59 minutes of an hour")
	}
	now = now.Add(time.Minute)
	if !board.Due("a", time.Hour) {
		t.Error("not due after the hour had passed")
	}
}
