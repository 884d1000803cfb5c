package config

import (
	"fmt"
	"time"
)

// Retention says how long the clinical content of a referral is kept. The
// case record, the message sent and the receiver's response are deleted
// ContentDays after the referral last changed and once nothing of it is
// still queued; its status and its decision records stay, so the audit
// trail outlives the content (docs/dpia.md).
type Retention struct {
	// ContentDays is how many days content is kept (default 180).
	ContentDays int `json:"contentDays"`
	// Interval is how often `gateway serve` purges (default 24h).
	Interval Duration `json:"interval"`
}

func (r *Retention) defaults() {
	if r.ContentDays == 0 {
		r.ContentDays = 180
	}
	if r.Interval == 0 {
		r.Interval = Duration(24 * time.Hour)
	}
}

func (r Retention) validate() error {
	switch {
	case r.ContentDays < 1 || r.ContentDays > 36500:
		return fmt.Errorf("retention.contentDays %d: between 1 and 36500", r.ContentDays)
	case r.Interval.D() < time.Minute:
		return fmt.Errorf("retention.interval %s: at least 1m", r.Interval.D())
	}
	return nil
}

// Cutoff is the time before which content is purged at now.
func (r Retention) Cutoff(now time.Time) time.Time {
	return now.AddDate(0, 0, -r.ContentDays)
}
