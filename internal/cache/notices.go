package cache

import "time"

// maxNotices bounds a notice board.
const maxNotices = 10000

// NoticeBoard rate-limits repeated log entries, so that an operator who
// has not published a record yet sees it once an hour rather than at each
// retry.
type NoticeBoard struct {
	now    func() time.Time
	logged *Expiring[struct{}]
}

// NewNoticeBoard returns a board that reads the time from now.
func NewNoticeBoard(now func() time.Time) *NoticeBoard {
	return &NoticeBoard{now: now, logged: NewExpiring[struct{}](maxNotices)}
}

// Due reports whether the notice under key may be logged now, and if so
// records that it was, so that it is not due again until every has passed.
func (b *NoticeBoard) Due(key string, every time.Duration) bool {
	now := b.now()
	if _, seen := b.logged.Get(key, now); seen {
		return false
	}
	b.logged.Put(key, struct{}{}, now, now.Add(every))
	return true
}
