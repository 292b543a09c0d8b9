package persist

import (
	"sync"
	"time"
)

// maxNotices bounds the board; older entries are dropped past it.
const maxNotices = 10000

// noticeBoard rate-limits repeated log entries, so that an operator who
// has not published a record yet sees it once an hour rather than at each
// retry.
type noticeBoard struct {
	now  func() time.Time
	mu   sync.Mutex
	last map[string]time.Time
}

func newNoticeBoard(now func() time.Time) *noticeBoard {
	return &noticeBoard{now: now, last: make(map[string]time.Time)}
}

// due reports whether the notice under key may be logged now, and if so
// records that it was.
func (b *noticeBoard) due(key string, every time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if last, ok := b.last[key]; ok && now.Sub(last) < every {
		return false
	}
	if len(b.last) >= maxNotices {
		for k, t := range b.last {
			if now.Sub(t) >= every {
				delete(b.last, k)
			}
		}
	}
	b.last[key] = now
	return true
}
