package dataservice

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"govshare/internal/calendar"
)

// limiter keeps the requests-per-second limits of grants and apps, in
// this server's memory: several servers together allow up to their
// number times the limit, which the daily quotas (kept in the database)
// bound.
type limiter struct {
	mu      sync.Mutex
	buckets map[bucketKey]*bucket
}

type bucketKey struct {
	app bool
	id  int64
}

type bucket struct {
	perSecond int
	lim       *rate.Limiter
}

func newLimiter() *limiter { return &limiter{buckets: map[bucketKey]*bucket{}} }

// allow takes one request from the bucket of k, allowing perSecond; it
// says how long to wait when there is none left.
func (l *limiter) allow(k bucketKey, perSecond int, now time.Time) (bool, time.Duration) {
	if perSecond <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil || b.perSecond != perSecond {
		b = &bucket{perSecond: perSecond, lim: rate.NewLimiter(rate.Limit(perSecond), perSecond)}
		l.buckets[k] = b
	}
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// admit applies the requests-per-second limits of the grant and the app.
func (s *Service) admit(u *use) error {
	now := time.Now()
	if ok, wait := s.limits.allow(bucketKey{id: u.permit.GrantID}, u.permit.RateLimit, now); !ok {
		return ErrRate.After(wait)
	}
	if u.caller.AppID != 0 {
		if ok, wait := s.limits.allow(bucketKey{app: true, id: u.caller.AppID}, u.caller.Limits.RateLimit, now); !ok {
			return ErrRate.After(wait)
		}
	}
	return nil
}

// untilTomorrow is how long until the daily quotas start again
// (midnight, China Standard Time).
func untilTomorrow(now time.Time) time.Duration {
	d := now.In(calendar.CST)
	next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, calendar.CST)
	return next.Sub(now)
}

// recordsLeft is how many records the call may return: want, or fewer
// when the grant's or the app's records of today are nearly used up. It
// refuses when none are left.
func (s *Service) recordsLeft(ctx context.Context, u *use, want int64) (int64, error) {
	left := want
	for _, q := range []struct {
		key   quotaKey
		limit int
	}{
		{quotaKey{measure: measureRecords, id: u.permit.GrantID}, u.permit.DailyQuota},
		{quotaKey{measure: measureRecords, app: true, id: u.caller.AppID}, u.caller.Limits.DailyRecords},
	} {
		if q.limit <= 0 || (q.key.app && q.key.id == 0) {
			continue
		}
		used, err := s.usage.total(ctx, q.key)
		if err != nil {
			return 0, err
		}
		left = min(left, int64(q.limit)-used)
	}
	if left <= 0 {
		return 0, ErrQuota.After(untilTomorrow(s.now()))
	}
	return left, nil
}

// verifyAllowed refuses a comparison of n records that would go over
// the grant's or the app's comparisons of today.
func (s *Service) verifyAllowed(ctx context.Context, u *use, n int64) error {
	for _, q := range []struct {
		key   quotaKey
		limit int
	}{
		{quotaKey{measure: measureVerify, id: u.permit.GrantID}, u.permit.VerifyQuota},
		{quotaKey{measure: measureVerify, app: true, id: u.caller.AppID}, u.caller.Limits.DailyVerify},
	} {
		if q.limit <= 0 || (q.key.app && q.key.id == 0) {
			continue
		}
		used, err := s.usage.total(ctx, q.key)
		if err != nil {
			return err
		}
		if used+n > int64(q.limit) {
			return ErrVerifyQ.After(untilTomorrow(s.now()))
		}
	}
	return nil
}
