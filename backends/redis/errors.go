package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
)

// unavailable reports whether err means Redis cannot serve the request right
// now: anything that is not a reply from Redis (connection refused, i/o
// errors, timeouts, a closed pool, a cancelled context), and the replies
// Redis sends while it cannot serve (LOADING, BUSY, CLUSTERDOWN, TRYAGAIN,
// MASTERDOWN, READONLY, OOM, max clients).
func unavailable(err error) bool {
	if err == nil || errors.Is(err, goredis.Nil) {
		return false
	}
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return true
	}
	for _, p := range unavailablePrefixes {
		if goredis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

var unavailablePrefixes = []string{"LOADING", "BUSY ", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM", "max number of clients"}

// classify makes an error that means Redis cannot be reached wrap
// backends.ErrUnavailable as well as the original error.
func classify(err error) error {
	if err == nil || errors.Is(err, backends.ErrUnavailable) || !unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", backends.ErrUnavailable, err)
}

// wrap adds context to an error from go-redis (see classify).
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("redis backend: %s: %w", op, classify(err))
}

// Backoff of the background loops after a failure.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// backoff doubles from minBackoff to maxBackoff.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = minBackoff
	} else if b.d < maxBackoff {
		b.d = min(2*b.d, maxBackoff)
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits for d or until ctx is done; it reports whether ctx is still
// live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// streak rate-limits the reports of one background loop: the first failure
// of a streak goes to the Receiver's Error, the rest of the streak is
// silent, and the first success after it is logged at Info. A streak is
// used by one goroutine.
type streak struct {
	n       *node
	what    string
	failing bool
	count   int
	since   time.Time
}

func (s *streak) fail(err error) {
	s.count++
	if s.failing {
		return
	}
	s.failing = true
	s.since = time.Now()
	s.n.report(fmt.Errorf("redis backend: node %s: %s: %w", s.n.id, s.what, classify(err)))
}

func (s *streak) ok() {
	if !s.failing {
		return
	}
	s.n.b.log.LogAttrs(context.Background(), slog.LevelInfo, "redis backend: recovered",
		slog.String("node", s.n.id), slog.String("loop", s.what),
		slog.Int("failures", s.count), slog.Duration("after", time.Since(s.since)))
	s.failing, s.count = false, 0
}

func isUnknown(err error) bool { return errors.Is(err, backends.ErrUnknownSession) }
