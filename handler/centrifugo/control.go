package centrifugo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// Server-side actions on a user's connections (Disconnect, Unsubscribe)
// reach every node: the connections of each user are listed in the
// backend's presence under a reserved channel name, and the action goes to
// each connection's session as an upstream message that starts with
// controlByte. A client could send itself such a message through
// /emulation: it is refused there. The index's channel names start with a
// NUL byte, which channel names from clients cannot (checkChannel).

// controlByte starts a control message; JSON commands never do.
const controlByte = 0

// userIndexPrefix starts the presence channel listing a user's sessions;
// its NUL byte keeps every client command away from it (checkChannel).
const userIndexPrefix = "\x00centrifugo.user:"

// control is a message from the server to one connection. Clients cannot
// send one: /emulation refuses data that starts with a NUL byte, and the
// native protocol refuses the ids of Centrifugo's sessions.
type control struct {
	Disconnect  *Disconnect `json:"disconnect,omitempty"`
	Unsubscribe string      `json:"unsubscribe,omitempty"`
}

func (c *Client) control(data []byte) {
	var m control
	if json.Unmarshal(data, &m) == nil {
		c.apply(m)
	}
}

// apply carries out a control message.
func (c *Client) apply(m control) {
	switch {
	case m.Disconnect != nil:
		c.Disconnect(*m.Disconnect)
	case m.Unsubscribe != "":
		_ = c.Unsubscribe(m.Unsubscribe)
	}
}

// indexUser lists the client's session under its user, with the
// presence TTL (refreshed with the client's presence).
func (p *Protocol) indexUser(c *Client) {
	pr, ok := p.e.Node().(backends.Presence)
	if !ok || c.user == "" || len(userIndexPrefix)+len(c.user) > backends.MaxChannelLen {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	err := pr.AddPresence(ctx, userIndexPrefix+c.user, backends.PresenceInfo{Client: c.peer.ID(), User: c.user}, p.cfg.PresenceTTL)
	if err != nil && ctx.Err() == nil {
		p.e.ReportError(c.peer, fmt.Errorf("centrifugo: index user: %w", err))
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed { // closedWith may have unindexed it before: again
		p.unindexUser(c)
	}
}

func (p *Protocol) unindexUser(c *Client) {
	pr, ok := p.e.Node().(backends.Presence)
	if !ok || c.user == "" || len(userIndexPrefix)+len(c.user) > backends.MaxChannelLen {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pr.RemovePresence(ctx, userIndexPrefix+c.user, c.peer.ID()); err != nil {
		p.e.ReportError(c.peer, fmt.Errorf("centrifugo: unindex user: %w", err))
	}
}

// sendControl delivers m to every connection of user, on every node that
// shares the backend (only this node's when the backend keeps no
// presence).
func (p *Protocol) sendControl(ctx context.Context, user string, m control) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	msg := append([]byte{controlByte}, data...)
	// This node's connections without waiting for their hooks: a hook of
	// one of them may be the caller. A disconnect at once; an unsubscribe
	// (which runs the Unsubscribe hook) in its turn.
	local := make(map[string]bool)
	for _, c := range p.Clients(user) {
		local[c.peer.ID()] = true
		if m.Disconnect != nil {
			c.control(data)
		} else {
			go func() { _ = c.peer.Receive(msg) }()
		}
	}
	pr, ok := p.e.Node().(backends.Presence)
	if !ok || user == "" || len(userIndexPrefix)+len(user) > backends.MaxChannelLen {
		return nil
	}
	sessions, err := pr.Presence(ctx, userIndexPrefix+user)
	if err != nil {
		return fmt.Errorf("centrifugo: sessions of user %q: %w", user, err)
	}
	var errs []error
	for id := range sessions {
		if local[id] {
			continue
		}
		if m.Disconnect == nil {
			// An unsubscribe waits for the connection's hooks, which may
			// wait for the caller (a backend that delivers in the
			// caller's goroutine: memory, shared by Handlers): sent on.
			go func() {
				if err := p.e.Upstream(context.WithoutCancel(ctx), id, msg); err != nil && !errors.Is(err, backends.ErrUnknownSession) {
					p.e.ReportError(nil, fmt.Errorf("centrifugo: unsubscribe user %q: %w", user, err))
				}
			}()
			continue
		}
		// A disconnect is handled without waiting (Client.intercept).
		err := p.e.Upstream(ctx, id, msg)
		if err != nil && !errors.Is(err, backends.ErrUnknownSession) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Disconnect disconnects every connection of user, on every node, with
// d. Anonymous connections (user "") are only those of this node. It
// returns once every node has the request; the connections close right
// after.
func (p *Protocol) Disconnect(ctx context.Context, user string, d Disconnect) error {
	return p.sendControl(ctx, user, control{Disconnect: &d})
}

// Unsubscribe unsubscribes every connection of user, on every node, from
// channel (they get an unsubscribe push with code 2000). It returns once
// the requests are sent; each connection handles its own after the
// command it may be running, so a hook may call it for its own user.
func (p *Protocol) Unsubscribe(ctx context.Context, user, channel string) error {
	if err := checkChannel(channel); err != nil {
		return err
	}
	return p.sendControl(ctx, user, control{Unsubscribe: channel})
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
