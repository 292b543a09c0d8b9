package persist

import "time"

// maxNotices bounds the board.
const maxNotices = 10000

// noticeBoard rate-limits repeated log entries, so that an operator who
// has not published a record yet sees it once an hour rather than at each
// retry.
type noticeBoard struct {
	now    func() time.Time
	logged *expiring[struct{}]
}

func newNoticeBoard(now func() time.Time) *noticeBoard {
	return &noticeBoard{now: now, logged: newExpiring[struct{}](maxNotices)}
}

// due reports whether the notice under key may be logged now, and if so
// records that it was.
func (b *noticeBoard) due(key string, every time.Duration) bool {
	now := b.now()
	if _, seen := b.logged.get(key, now); seen {
		return false
	}
	b.logged.put(key, struct{}{}, now, now.Add(every))
	return true
}
