package centrifugo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/handler/centrifugo/token"
	"github.com/ssebridge/ssebridge/handler/centrifugo/wire"
	"github.com/ssebridge/ssebridge/handler/engine"
)

// Client is one Centrifugo connection: a bidirectional ("sse") or
// unidirectional ("uni_sse") stream and the engine peer behind it. Its
// methods are safe for concurrent use.
type Client struct {
	p     *Protocol
	uni   bool
	codec *codec
	id    string // the public client id, shown in presence
	peer  *engine.Peer

	// Set before the peer opens; read-only after.
	user     string
	info     json.RawMessage
	name     string
	version  string
	connID   uint32
	connect  *wire.ConnectRequest
	reply    ConnectReply
	pending  []wire.Command // cf_connect commands after connect
	ctx      context.Context
	cancelFn context.CancelFunc

	mu       sync.Mutex
	subs     map[string]*subscription
	expireAt time.Time
	pingAt   time.Time // when the last ping was sent (zero: none unanswered)
	timer    *time.Timer
	pongT    *time.Timer
	expT     *time.Timer
	closed   bool
	// opening is set while open runs; a close meanwhile is owed to it.
	opening bool
	owed    *engine.CloseDetails
	// connected is set once the connect reply is queued and the
	// connection counted (Connect hook; Disconnect hook only then).
	connected bool
}

// subscription is a channel a client is subscribed to.
type subscription struct {
	chanInfo json.RawMessage
	presence bool // the client is in the channel's presence
	announce bool // its join was announced: its leave will be
	listens  bool // it gets join and leave pushes (joinLeaveTopic)
	expireAt time.Time
	timer    *time.Timer
}

func newClient(p *Protocol, uni bool) *Client {
	c := &Client{p: p, uni: uni, id: newUUID(), subs: make(map[string]*subscription)}
	c.codec = bidiCodec.(*codec)
	if uni {
		c.codec = uniCodec.(*codec)
	}
	c.ctx, c.cancelFn = context.WithCancel(context.Background())
	return c
}

// ID returns the client id: public, unique per connection (the session id,
// which lets whoever knows it send as the client, is not shown).
func (c *Client) ID() string { return c.id }

// UserID returns the user of the connection ("" for anonymous).
func (c *Client) UserID() string { return c.user }

// Info returns the connection info set when it connected.
func (c *Client) Info() json.RawMessage { return c.info }

// Transport returns "sse" or "uni_sse".
func (c *Client) Transport() string {
	if c.uni {
		return "uni_sse"
	}
	return "sse"
}

// Name returns the client's name, as its connect command gave it
// (centrifuge-js: "js").
func (c *Client) Name() string { return c.name }

// Version returns the client's version, as its connect command gave it.
func (c *Client) Version() string { return c.version }

// Peer returns the engine peer behind the connection; its id is the
// connection's session.
func (c *Client) Peer() *engine.Peer { return c.peer }

// Context is cancelled when the connection is gone.
func (c *Client) Context() context.Context { return c.ctx }

// Channels returns the channels the client is subscribed to.
func (c *Client) Channels() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.subs))
	for ch := range c.subs {
		out = append(out, ch)
	}
	return out
}

// Send sends an asynchronous message push with data (JSON) to the client.
func (c *Client) Send(data json.RawMessage) error {
	if c.peer == nil {
		return engine.ErrClosed
	}
	return c.peer.SendText(string(data))
}

// Disconnect closes the connection: queued frames are written, then a
// disconnect push with d (none for code 3000), then the stream ends. Codes
// outside 3000–4999 are sent as 3004 "internal server error".
func (c *Client) Disconnect(d Disconnect) {
	if c.peer != nil {
		_ = c.peer.Close(int(d.Code), d.Reason)
	}
}

// Unsubscribe removes the client from channel and tells it so with an
// unsubscribe push (code 2000 "server unsubscribe").
func (c *Client) Unsubscribe(channel string) error {
	return c.unsubscribeServer(channel, wire.UnsubscribeServer, "server unsubscribe")
}

// intercept handles, without waiting for the command under way, what
// must not wait: pongs (a slow command would make a healthy client miss
// its pong deadline) and the server's disconnects. Other control messages
// (an unsubscribe, which runs the Unsubscribe hook) wait their turn.
func (c *Client) intercept(data []byte) bool {
	if len(data) > 0 && data[0] == controlByte {
		var m control
		if json.Unmarshal(data[1:], &m) != nil {
			return true // not one of ours: nothing to do
		}
		if m.Disconnect != nil {
			c.apply(m)
			return true
		}
		return false
	}
	if len(data) <= 8 && string(bytes.TrimSpace(data)) == "{}" {
		c.pong()
		return true
	}
	return false
}

// engineHooks are the peer's hooks: the connection's own.
func (c *Client) engineHooks() *engine.Hooks {
	return &engine.Hooks{
		Open:    func(*engine.Peer) { c.open() },
		Message: func(_ *engine.Peer, m engine.Message) { c.receive(m.Bytes()) },
		Close:   func(_ *engine.Peer, d engine.CloseDetails) { c.closedWith(d) },
	}
}

// refuse answers a stream whose connect failed: the connect error reply
// (bidirectional) or a disconnect push, in a 200 stream that then ends, as
// Centrifugo does.
func (c *Client) refuse(x engine.Exchange, connID uint32, e *Error, d *Disconnect) {
	b := []byte("\r\n")
	switch {
	case e != nil && !c.uni:
		b, _ = appendEvent(b, wire.Reply{ID: connID, Error: e})
	case e != nil:
		// The unidirectional transport has no replies: the error becomes
		// the disconnect Centrifugo makes of it.
		d := uniDisconnect(e)
		b = c.codec.appendDisconnect(b, d.Code, d.Reason)
	default:
		b = c.codec.appendDisconnect(b, d.Code, d.Reason)
	}
	x.StreamBody(http.StatusOK, func() {
		_ = x.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = x.Write(b)
		_ = x.Flush()
	})
}

// uniDisconnect is the disconnect of a unidirectional connect that failed
// with e, as Centrifugo maps them: expired tokens and connections reconnect
// (3005), too many requests too (3013), a refused permission does not
// (3507), anything else is a server error the client retries (3004).
func uniDisconnect(e *Error) Disconnect {
	switch e.Code {
	case wire.ErrorTokenExpired.Code, wire.ErrorExpired.Code:
		return Disconnect{wire.DisconnectExpired, "expired"}
	case wire.ErrorTooManyRequests.Code:
		return Disconnect{wire.DisconnectTooManyRequests, "too many requests"}
	case wire.ErrorPermissionDenied.Code:
		return Disconnect{wire.DisconnectPermissionDenied, "permission denied"}
	}
	return Disconnect{wire.DisconnectServerError, "internal server error"}
}

// authenticate runs token verification and the Connecting hook.
func (c *Client) authenticate(x engine.Exchange, req *wire.ConnectRequest) (ConnectReply, *Error, *Disconnect) {
	cfg := &c.p.cfg
	c.name, c.version = req.Name, req.Version
	if len(c.name) > 16 || len(c.version) > 64 {
		return ConnectReply{}, nil, DisconnectBadRequest
	}
	ev := ConnectEvent{
		Request: engine.NewRequest(x), Transport: c.Transport(), Token: req.Token,
		Data: req.Data, Name: req.Name, Version: req.Version, Headers: req.Headers,
	}
	for ch := range req.Subs {
		ev.Channels = append(ev.Channels, ch)
	}
	if req.Token != "" && cfg.Token != nil {
		claims, err := cfg.Token.VerifyConnect(req.Token)
		switch {
		case errors.Is(err, token.ErrExpired):
			return ConnectReply{}, ErrorTokenExpired, nil
		case err != nil:
			c.p.e.Logger().Info("centrifugo: connect token refused", "err", err)
			return ConnectReply{}, nil, DisconnectInvalidToken
		}
		ev.Claims = &claims
	}
	var reply ConnectReply
	switch {
	case cfg.Hooks.Connecting != nil:
		r, err := callConnecting(cfg.Hooks.Connecting, x.Context(), ev)
		if err != nil {
			e, d := refusal(err)
			if e == nil && d == nil {
				c.p.e.ReportError(nil, fmt.Errorf("centrifugo: Connecting hook: %w", err))
				e = ErrorInternal
			}
			return ConnectReply{}, e, d
		}
		reply = r
	case ev.Claims != nil:
		reply = ConnectReply{UserID: ev.Claims.UserID, ExpireAt: ev.Claims.ExpireAt, Info: ev.Claims.Info}
		// subs, when the token has it, replaces channels (as Centrifugo).
		switch {
		case len(ev.Claims.Subs) > 0:
			reply.Subscriptions = make(map[string]SubscribeOptions, len(ev.Claims.Subs))
			for ch, o := range ev.Claims.Subs {
				reply.Subscriptions[ch] = SubscribeOptions{Data: o.Data, ChanInfo: o.Info}
			}
		case len(ev.Claims.Channels) > 0:
			reply.Subscriptions = make(map[string]SubscribeOptions, len(ev.Claims.Channels))
			for _, ch := range ev.Claims.Channels {
				reply.Subscriptions[ch] = SubscribeOptions{}
			}
		}
	case cfg.Token == nil || cfg.Anonymous:
		// Anonymous.
	default:
		return ConnectReply{}, ErrorUnauthorized, nil
	}
	if len(reply.Subscriptions) > cfg.ChannelLimit {
		return ConnectReply{}, nil, &Disconnect{wire.DisconnectChannelLimit, "channel limit"}
	}
	for ch := range reply.Subscriptions {
		if checkChannel(ch) != nil {
			c.p.e.ReportError(nil, fmt.Errorf("centrifugo: server-side subscription to an invalid channel name of %d bytes", len(ch)))
			return ConnectReply{}, ErrorInternal, nil
		}
	}
	if !reply.ExpireAt.IsZero() && !reply.ExpireAt.After(time.Now()) {
		return ConnectReply{}, nil, DisconnectExpired
	}
	c.user, c.info, c.expireAt = reply.UserID, reply.Info, reply.ExpireAt
	return reply, nil, nil
}

func callConnecting(h func(context.Context, ConnectEvent) (ConnectReply, error), ctx context.Context, ev ConnectEvent) (r ConnectReply, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &engine.PanicError{Hook: "Connecting", Value: v, Stack: debug.Stack()}
		}
	}()
	return h(ctx, ev)
}

// prepare keeps what open needs once the peer exists.
func (c *Client) prepare(peer *engine.Peer, connID uint32, req *wire.ConnectRequest, reply ConnectReply, rest []wire.Command) {
	c.peer, c.connID, c.connect, c.reply, c.pending = peer, connID, req, reply, rest
}

// open runs as the peer's Open hook, before the stream's first bytes:
// server-side subscriptions, the connect reply (or push), then the other
// commands of cf_connect.
func (c *Client) open() {
	cfg := &c.p.cfg
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return // closed before it opened: cleaned up already
	}
	c.opening = true
	c.mu.Unlock()
	defer c.opened()
	if err := c.peer.Hold(); err != nil {
		return
	}
	res := &wire.ConnectResult{
		Client: c.id, Version: cfg.Version, Data: c.reply.Data,
		Ping: uint32(cfg.PingInterval / time.Second), Session: c.peer.ID(),
	}
	if !c.uni {
		res.Pong = cfg.PongTimeout > 0
		res.Node = c.p.e.NodeID()
	}
	if !c.expireAt.IsZero() {
		res.Expires, res.TTL = true, ttlOf(c.expireAt)
	}
	subs := c.reply.Subscriptions
	if c.uni && len(c.connect.Subs) > 0 {
		// The channels a unidirectional client asks for, where it may
		// subscribe (the others are left out, as Centrifugo does).
		subs = maps.Clone(subs)
		if subs == nil {
			subs = make(map[string]SubscribeOptions)
		}
		for ch := range c.connect.Subs {
			if _, ok := subs[ch]; ok || checkChannel(ch) != nil || len(subs) >= cfg.ChannelLimit {
				continue
			}
			if opts, err := c.allowSubscribe(ch, "", nil); err == nil {
				subs[ch] = opts
			} else if _, d := refusal(err); d != nil {
				_ = c.peer.Release(nil, nil)
				c.Disconnect(*d)
				return
			}
		}
	}
	covered := make(map[string]uint64)
	for ch, opts := range subs {
		hint := c.connect.Subs[ch]
		sr, top, err := c.subscribe(ch, opts, &hint, true)
		if err != nil {
			_ = c.peer.Release(nil, nil)
			c.disconnectFor(err)
			return
		}
		if res.Subs == nil {
			res.Subs = make(map[string]wire.SubscribeResult)
		}
		res.Subs[ch] = *sr
		covered[ch] = top
	}
	var frame []byte
	var err error
	if c.uni {
		frame, err = appendEvent(nil, wire.Push{Connect: res})
	} else {
		frame, err = appendEvent(nil, wire.Reply{ID: c.connID, Connect: res})
	}
	if err != nil {
		_ = c.peer.Release(nil, nil)
		c.disconnectFor(err)
		return
	}
	if c.peer.Release([][]byte{frame}, covered) != nil {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.p.addUser(c) // before closedWith can remove it: it waits for c.mu
	c.mu.Unlock()
	c.p.indexUser(c)
	c.startTimers()
	c.mu.Lock()
	c.connected = !c.closed
	connected := c.connected
	c.mu.Unlock()
	if h := cfg.Hooks.Connect; h != nil && connected {
		c.runHook("Connect", func() { h(c) })
	}
	for i := range c.pending {
		if !c.dispatch(&c.pending[i]) {
			return
		}
	}
	c.pending = nil
}

// opened ends open: a close that came meanwhile is carried out now.
func (c *Client) opened() {
	c.mu.Lock()
	c.opening = false
	owed := c.owed
	c.owed = nil
	c.mu.Unlock()
	if owed != nil {
		c.cleanup(*owed)
	}
}

// ttlOf is the whole seconds until t, at least 1.
func ttlOf(t time.Time) uint32 {
	return uint32(max(time.Until(t)/time.Second, 1))
}

// disconnectFor closes the connection for an error: a *Disconnect as it
// says, anything else as a server error (reported).
func (c *Client) disconnectFor(err error) {
	_, d := refusal(err)
	if d == nil {
		c.p.e.ReportError(c.peer, err)
		d = &Disconnect{wire.DisconnectServerError, "internal server error"}
	}
	c.Disconnect(*d)
}

// runHook calls an application hook, turning a panic into a report.
func (c *Client) runHook(name string, fn func()) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			c.p.e.ReportError(c.peer, &engine.PanicError{Hook: name, Value: v, Stack: debug.Stack()})
			ok = false
		}
	}()
	fn()
	return true
}

// startTimers starts pings (the first at a random point of the second half
// of the interval, as Centrifugo spreads them) and the expiry of the
// connection.
func (c *Client) startTimers() {
	iv := c.p.cfg.PingInterval
	first := iv/2 + rand.N(iv/2+1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.timer = time.AfterFunc(first, c.tick)
	if !c.expireAt.IsZero() {
		c.expT = time.AfterFunc(time.Until(c.expireAt), c.checkExpired)
	}
}

// tick pings the client, arms the pong check, and refreshes the client's
// presence entries.
func (c *Client) tick() {
	cfg := &c.p.cfg
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.timer.Reset(cfg.PingInterval)
	wantPong := !c.uni && cfg.PongTimeout > 0
	if wantPong && c.pingAt.IsZero() {
		c.pingAt = time.Now()
		if c.pongT == nil {
			c.pongT = time.AfterFunc(cfg.PongTimeout, c.checkPong)
		} else {
			c.pongT.Reset(cfg.PongTimeout)
		}
	}
	var present []string
	for ch, s := range c.subs {
		if s.presence {
			present = append(present, ch)
		}
	}
	c.mu.Unlock()
	_ = c.peer.PushFrame(appendPing(nil))
	c.refreshPresence(present)
}

// pong records the client's answer to the last ping.
func (c *Client) pong() {
	c.mu.Lock()
	c.pingAt = time.Time{}
	if c.pongT != nil {
		c.pongT.Stop()
	}
	c.mu.Unlock()
}

// checkPong disconnects a client that did not answer its ping in time.
func (c *Client) checkPong() {
	c.mu.Lock()
	late := !c.closed && !c.pingAt.IsZero()
	c.mu.Unlock()
	if late {
		c.Disconnect(*DisconnectNoPong)
	}
}

// checkExpired disconnects a client whose connection expired without a
// refresh.
func (c *Client) checkExpired() {
	c.mu.Lock()
	exp := c.expireAt
	closed := c.closed
	if !closed && !exp.IsZero() && time.Now().Before(exp) {
		c.expT.Reset(time.Until(exp)) // refreshed meanwhile
	}
	c.mu.Unlock()
	if !closed && !exp.IsZero() && !time.Now().Before(exp) {
		c.Disconnect(*DisconnectExpired)
	}
}

// closedWith runs as the peer's Close hook: the connection is gone.
func (c *Client) closedWith(d engine.CloseDetails) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.opening {
		// open is still at work (the Open hook runs beside the stream):
		// it cleans up when it is done, so that the Disconnect hook
		// follows the Connect hook.
		c.owed = &d
		c.mu.Unlock()
		c.cancelFn()
		return
	}
	c.mu.Unlock()
	c.cleanup(d)
}

// cleanup releases what a closed connection held and runs the hooks of
// its end.
func (c *Client) cleanup(d engine.CloseDetails) {
	c.mu.Lock()
	for _, t := range []*time.Timer{c.timer, c.pongT, c.expT} {
		if t != nil {
			t.Stop()
		}
	}
	subs := c.subs
	c.subs = make(map[string]*subscription)
	connected := c.connected
	c.mu.Unlock()
	c.cancelFn()
	c.p.removeUser(c)
	c.p.unindexUser(c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ch, s := range subs {
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.presence {
			c.removePresence(ctx, ch)
		}
		if s.announce {
			c.announceJoinLeave(ch, s, "leave")
		}
		if h := c.p.cfg.Hooks.Unsubscribe; h != nil {
			c.runHook("Unsubscribe", func() { h(c, ch) })
		}
	}
	if h := c.p.cfg.Hooks.Disconnect; h != nil && connected {
		code, reason := disconnectOf(d)
		if d.Code == engine.CloseAbnormal {
			code, reason = wire.DisconnectConnectionClosed, "connection closed"
		}
		c.runHook("Disconnect", func() { h(c, Disconnect{Code: code, Reason: reason}) })
	}
}

// presence returns the backend's presence, if it keeps one.
func (c *Client) presenceBackend() (backends.Presence, bool) {
	pr, ok := c.p.e.Node().(backends.Presence)
	return pr, ok
}

func (c *Client) presenceInfo(chanInfo json.RawMessage) backends.PresenceInfo {
	return backends.PresenceInfo{Client: c.id, User: c.user, ConnInfo: c.info, ChanInfo: chanInfo}
}

// refreshPresence refreshes the client's presence in channels.
func (c *Client) refreshPresence(channels []string) {
	pr, ok := c.presenceBackend()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	for _, ch := range channels {
		c.mu.Lock()
		s := c.subs[ch]
		c.mu.Unlock()
		if s == nil {
			continue
		}
		if err := pr.AddPresence(ctx, ch, c.presenceInfo(s.chanInfo), c.p.cfg.PresenceTTL); err != nil && ctx.Err() == nil {
			c.p.e.ReportError(c.peer, fmt.Errorf("centrifugo: refresh presence in %q: %w", ch, err))
		}
		c.mu.Lock()
		gone := c.closed || c.subs[ch] != s
		c.mu.Unlock()
		if gone { // left meanwhile: do not leave a ghost behind
			c.removePresence(context.Background(), ch)
		}
	}
	c.p.indexUser(c)
}

func (c *Client) removePresence(ctx context.Context, ch string) {
	pr, ok := c.presenceBackend()
	if !ok {
		return
	}
	if err := pr.RemovePresence(ctx, ch, c.id); err != nil {
		c.p.e.ReportError(c.peer, fmt.Errorf("centrifugo: remove presence in %q: %w", ch, err))
	}
}

// rawJSON converts bytes the engine must pass on as they are.
func rawJSON(b []byte) json.RawMessage { return json.RawMessage(b) }
