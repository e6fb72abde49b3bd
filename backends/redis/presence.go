package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// Presence: per channel, a hash client → entry and a zset client → expiry
// (unix ms on Redis' clock, so the nodes' clocks do not matter), under one
// hash tag (Backend.presenceKeys). AddPresence sets both and drops up to
// 100 expired entries; Presence and PresenceStats first drop every expired
// entry, so they never return one. Both keys are PEXPIREd, on every
// AddPresence, to the channel's latest expiry: they vanish with their last
// live entry.
//
// Entry encoding (the hash value), safe for arbitrary bytes:
//
//	"1|" user conn chan
//
// where user is "<len>:<bytes>" (decimal length), and conn and chan are
// "<len>:<bytes>", or "-" for nil, so that nil and empty both round-trip.
// The stats script reads the user at the start of the entry.

const presenceVersion = "1|"

func appendField(b, f []byte, keepNil bool) []byte {
	if keepNil && f == nil {
		return append(b, '-')
	}
	b = strconv.AppendInt(b, int64(len(f)), 10)
	b = append(b, ':')
	return append(b, f...)
}

func encodePresence(info backends.PresenceInfo) []byte {
	b := make([]byte, 0, len(presenceVersion)+3*8+len(info.User)+len(info.ConnInfo)+len(info.ChanInfo))
	b = append(b, presenceVersion...)
	b = strconv.AppendInt(b, int64(len(info.User)), 10)
	b = append(b, ':')
	b = append(b, info.User...)
	b = appendField(b, info.ConnInfo, true)
	return appendField(b, info.ChanInfo, true)
}

var errBadEntry = errors.New("redis backend: malformed presence entry")

// field reads one field at the start of s: its bytes (a copy; nil for
// "-") and the rest of s.
func field(s string, allowNil bool) ([]byte, string, error) {
	if allowNil && len(s) > 0 && s[0] == '-' {
		return nil, s[1:], nil
	}
	i := 0
	for i < len(s) && i < 8 && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != ':' {
		return nil, "", errBadEntry
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n > len(s)-i-1 {
		return nil, "", errBadEntry
	}
	s = s[i+1:]
	return []byte(s[:n]), s[n:], nil
}

func decodePresence(client, s string) (backends.PresenceInfo, error) {
	info := backends.PresenceInfo{Client: client}
	if len(s) < len(presenceVersion) || s[:len(presenceVersion)] != presenceVersion {
		return info, errBadEntry
	}
	s = s[len(presenceVersion):]
	user, s, err := field(s, false)
	if err != nil {
		return info, err
	}
	info.User = string(user)
	if info.ConnInfo, s, err = field(s, true); err != nil {
		return info, err
	}
	if info.ChanInfo, s, err = field(s, true); err != nil {
		return info, err
	}
	if s != "" {
		return info, errBadEntry
	}
	return info, nil
}

// AddPresence implements backends.Presence.
func (n *node) AddPresence(ctx context.Context, channel string, info backends.PresenceInfo, ttl time.Duration) error {
	const op = "add presence"
	if err := backends.CheckPresence(channel, info.Client, &info, ttl); err != nil {
		return err
	}
	if n.closed.Load() {
		return n.errClosed(op)
	}
	err := scriptPresenceAdd.Run(ctx, n.b.client, n.b.presenceKeys(channel), info.Client, encodePresence(info), ms(ttl)).Err()
	return wrap(op, err)
}

// RemovePresence implements backends.Presence.
func (n *node) RemovePresence(ctx context.Context, channel, client string) error {
	const op = "remove presence"
	if err := backends.CheckPresence(channel, client, nil, 0); err != nil {
		return err
	}
	if n.closed.Load() {
		return n.errClosed(op)
	}
	return wrap(op, scriptPresenceRemove.Run(ctx, n.b.client, n.b.presenceKeys(channel), client).Err())
}

// Presence implements backends.Presence.
func (n *node) Presence(ctx context.Context, channel string) (map[string]backends.PresenceInfo, error) {
	const op = "presence"
	if err := backends.CheckChannel(channel); err != nil {
		return nil, err
	}
	if n.closed.Load() {
		return nil, n.errClosed(op)
	}
	kv, err := scriptPresenceRead.Run(ctx, n.b.client, n.b.presenceKeys(channel), "all").StringSlice()
	if err != nil {
		return nil, wrap(op, err)
	}
	out := make(map[string]backends.PresenceInfo, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		info, err := decodePresence(kv[i], kv[i+1])
		if err != nil {
			return nil, fmt.Errorf("%w: channel %s, client %s", err, short(channel), short(kv[i]))
		}
		out[kv[i]] = info
	}
	return out, nil
}

// PresenceStats implements backends.Presence.
func (n *node) PresenceStats(ctx context.Context, channel string) (clients, users int, err error) {
	const op = "presence stats"
	if err := backends.CheckChannel(channel); err != nil {
		return 0, 0, err
	}
	if n.closed.Load() {
		return 0, 0, n.errClosed(op)
	}
	res, err := scriptPresenceRead.Run(ctx, n.b.client, n.b.presenceKeys(channel), "stats").Int64Slice()
	if err != nil {
		return 0, 0, wrap(op, err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("redis backend: %s: unexpected reply %v", op, res)
	}
	return int(res[0]), int(res[1]), nil
}

var _ backends.Presence = (*node)(nil)
