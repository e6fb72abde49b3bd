package memory

import (
	"context"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// Presence is kept in Backend.presence, channel → client → entry, under
// Backend.pmu. There is no background goroutine: expired entries are
// dropped when their channel is next used (any presence call for it), and
// each AddPresence also looks at up to sweepChannels other channels, from a
// random place in the map (Go map iteration), and drops their expired
// entries. A channel without entries is deleted at once, so memory stays
// bounded by the live entries plus the expired ones of channels nobody has
// touched since, which the sweeps of later AddPresence calls reach.

// sweepChannels is how many other channels each AddPresence sweeps.
const sweepChannels = 8

type presenceEntry struct {
	info    backends.PresenceInfo // owned copies of the byte slices
	expires time.Time
}

// cloneBytes copies b, keeping nil nil and empty empty.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func cloneInfo(i backends.PresenceInfo) backends.PresenceInfo {
	i.ConnInfo = cloneBytes(i.ConnInfo)
	i.ChanInfo = cloneBytes(i.ChanInfo)
	return i
}

func (n *node) isClosed() bool {
	n.b.mu.RLock()
	defer n.b.mu.RUnlock()
	return n.closed
}

// pruneLocked drops the expired entries of channel, and the channel when
// it has none left, and returns what is left (nil for none); b.pmu is
// held.
func (b *Backend) pruneLocked(channel string, now time.Time) map[string]presenceEntry {
	m := b.presence[channel]
	for c, e := range m {
		if !now.Before(e.expires) {
			delete(m, c)
		}
	}
	if len(m) == 0 {
		delete(b.presence, channel)
		return nil
	}
	return m
}

// AddPresence implements backends.Presence.
func (n *node) AddPresence(_ context.Context, channel string, info backends.PresenceInfo, ttl time.Duration) error {
	if err := backends.CheckPresence(channel, info.Client, &info, ttl); err != nil {
		return err
	}
	if n.isClosed() {
		return backends.ErrClosed
	}
	now := time.Now()
	e := presenceEntry{info: cloneInfo(info), expires: now.Add(ttl)}
	b := n.b
	b.pmu.Lock()
	defer b.pmu.Unlock()
	swept := 0
	for other := range b.presence {
		if swept == sweepChannels {
			break
		}
		if other != channel {
			b.pruneLocked(other, now)
			swept++
		}
	}
	m := b.pruneLocked(channel, now)
	if m == nil {
		m = make(map[string]presenceEntry)
		b.presence[channel] = m
	}
	m[info.Client] = e
	return nil
}

// RemovePresence implements backends.Presence.
func (n *node) RemovePresence(_ context.Context, channel, client string) error {
	if err := backends.CheckPresence(channel, client, nil, 0); err != nil {
		return err
	}
	if n.isClosed() {
		return backends.ErrClosed
	}
	b := n.b
	b.pmu.Lock()
	defer b.pmu.Unlock()
	if m := b.presence[channel]; m != nil {
		delete(m, client)
	}
	b.pruneLocked(channel, time.Now())
	return nil
}

// Presence implements backends.Presence.
func (n *node) Presence(_ context.Context, channel string) (map[string]backends.PresenceInfo, error) {
	if err := backends.CheckChannel(channel); err != nil {
		return nil, err
	}
	if n.isClosed() {
		return nil, backends.ErrClosed
	}
	b := n.b
	b.pmu.Lock()
	defer b.pmu.Unlock()
	m := b.pruneLocked(channel, time.Now())
	out := make(map[string]backends.PresenceInfo, len(m))
	for c, e := range m {
		out[c] = cloneInfo(e.info)
	}
	return out, nil
}

// PresenceStats implements backends.Presence.
func (n *node) PresenceStats(_ context.Context, channel string) (clients, users int, err error) {
	if err := backends.CheckChannel(channel); err != nil {
		return 0, 0, err
	}
	if n.isClosed() {
		return 0, 0, backends.ErrClosed
	}
	b := n.b
	b.pmu.Lock()
	defer b.pmu.Unlock()
	m := b.pruneLocked(channel, time.Now())
	seen := make(map[string]struct{}, len(m))
	for _, e := range m {
		if e.info.User != "" {
			seen[e.info.User] = struct{}{}
		}
	}
	return len(m), len(seen), nil
}

// PresenceChannels reports how many channels have presence entries (some
// perhaps expired and not yet pruned), for tests and metrics.
func (b *Backend) PresenceChannels() int {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	return len(b.presence)
}

var _ backends.Presence = (*node)(nil)
