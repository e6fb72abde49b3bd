package centrifugo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/handler/centrifugo/token"
	"github.com/ssebridge/ssebridge/handler/centrifugo/wire"
	"github.com/ssebridge/ssebridge/handler/engine"
)

// receive handles the data of an emulation request (newline-separated
// commands) or a control message from the server (see control.go), as the
// peer's Message hook: in order, one request at a time.
func (c *Client) receive(data []byte) {
	if len(data) > 0 && data[0] == controlByte {
		c.control(data[1:])
		return
	}
	if c.uni {
		return // a unidirectional client sends nothing
	}
	cmds, err := wire.DecodeCommands(data, 0)
	if errors.Is(err, wire.ErrEmpty) {
		return
	}
	if err != nil || len(cmds) > maxCommandsPerRequest {
		c.p.e.Logger().Info("centrifugo: bad commands", "client", c.id, "err", err, "commands", len(cmds))
		c.Disconnect(*DisconnectBadRequest)
		return
	}
	for i := range cmds {
		if !c.dispatch(&cmds[i]) {
			return
		}
	}
}

// dispatch runs one command and queues its reply. It reports false when
// the connection is being closed.
func (c *Client) dispatch(cmd *wire.Command) bool {
	if c.peer.Closed() {
		return false
	}
	kind := cmd.Kind()
	switch kind {
	case "pong":
		c.pong()
		return true
	case "send":
		if h := c.p.cfg.Hooks.Message; h != nil {
			c.runHook("Message", func() { h(c, cmd.Send.Data) })
		}
		return true
	case "ping":
		return true // not used by protocol v2
	case "connect":
		c.Disconnect(*DisconnectBadRequest) // connect twice
		return false
	}
	if cmd.ID == 0 {
		// A command that needs an answer, without an id to answer to.
		c.Disconnect(*DisconnectBadRequest)
		return false
	}
	var (
		r   = wire.Reply{ID: cmd.ID}
		err error
	)
	switch kind {
	case "subscribe":
		err = c.cmdSubscribe(cmd.ID, cmd.Subscribe)
		if err == nil {
			return true // the reply is queued with the recovered publications
		}
	case "unsubscribe":
		err = c.cmdUnsubscribe(cmd.Unsubscribe)
		r.Unsubscribe = &struct{}{}
	case "publish":
		err = c.cmdPublish(cmd.Publish)
		r.Publish = &struct{}{}
	case "presence":
		r.Presence, err = c.cmdPresence(cmd.Presence.Channel)
	case "presence_stats":
		r.PresenceStats, err = c.cmdPresenceStats(cmd.PresenceStats.Channel)
	case "history":
		r.History, err = c.cmdHistory(cmd.History)
	case "rpc":
		r.RPC, err = c.cmdRPC(cmd.RPC)
	case "refresh":
		r.Refresh, err = c.cmdRefresh(cmd.Refresh)
	case "sub_refresh":
		r.SubRefresh, err = c.cmdSubRefresh(cmd.SubRefresh)
	default:
		err = ErrorMethodNotFound
	}
	if err != nil {
		e, d := refusal(err)
		if d != nil {
			c.Disconnect(*d)
			return false
		}
		if e == nil {
			c.p.e.ReportError(c.peer, fmt.Errorf("centrifugo: %s: %w", kind, err))
			e = ErrorInternal
		}
		r = wire.Reply{ID: cmd.ID, Error: e}
	}
	return c.queue(r)
}

// queue queues a reply; false when the connection is closed or closing.
func (c *Client) queue(r wire.Reply) bool {
	frame, err := appendEvent(nil, r)
	if err != nil {
		c.disconnectFor(fmt.Errorf("centrifugo: encode reply: %w", err))
		return false
	}
	return c.peer.PushFrame(frame) == nil
}

// hookError turns a hook's refusal into what dispatch answers; other
// errors are reported and answered as internal errors.
func (c *Client) hookError(name string, err error) error {
	if e, d := refusal(err); e != nil || d != nil {
		return err
	}
	c.p.e.ReportError(c.peer, fmt.Errorf("centrifugo: %s hook: %w", name, err))
	return ErrorInternal
}

// callHook runs a hook returning (T, error), turning a panic into an
// internal error.
func callHook[T any](c *Client, name string, fn func() (T, error)) (r T, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.p.e.ReportError(c.peer, &engine.PanicError{Hook: name, Value: v, Stack: debug.Stack()})
			err = ErrorInternal
		}
	}()
	r, err = fn()
	if err != nil {
		err = c.hookError(name, err)
	}
	return r, err
}

func (c *Client) subscribed(ch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[ch] != nil
}

func (c *Client) cmdSubscribe(id uint32, req *wire.SubscribeRequest) error {
	cfg := &c.p.cfg
	ch := req.Channel
	if checkChannel(ch) != nil {
		return ErrorBadRequest
	}
	c.mu.Lock()
	_, dup := c.subs[ch]
	n := len(c.subs)
	c.mu.Unlock()
	switch {
	case dup:
		return ErrorAlreadySubscribed
	case n >= cfg.ChannelLimit:
		return ErrorLimitExceeded
	}
	opts, err := c.allowSubscribe(ch, req.Token, req.Data)
	if err != nil {
		return err
	}
	if err := c.peer.Hold(); err != nil {
		return &Disconnect{wire.DisconnectConnectionClosed, "connection closed"}
	}
	res, top, err := c.subscribe(ch, opts, req, false)
	if err != nil {
		_ = c.peer.Release(nil, dropAll(ch))
		return err
	}
	frame, err := appendEvent(nil, wire.Reply{ID: id, Subscribe: res})
	if err != nil {
		_, _ = c.leave(ch)
		_ = c.peer.Release(nil, dropAll(ch))
		return err
	}
	_ = c.peer.Release([][]byte{frame}, map[string]uint64{ch: top})
	return nil
}

// verifySubscriptionToken verifies a subscription token for ch: it must
// be valid, for ch, for the client's user, and for this client when it
// names one. An expired token is error 109, any other refusal 103.
func (c *Client) verifySubscriptionToken(ch, tok string) (token.SubscribeClaims, error) {
	claims, err := c.p.cfg.SubscriptionToken.VerifySubscribe(tok)
	switch {
	case errors.Is(err, token.ErrExpired):
		return claims, ErrorTokenExpired
	case err != nil, claims.Channel != ch, claims.UserID != c.user, claims.Client != "" && claims.Client != c.id:
		return claims, ErrorPermissionDenied
	}
	return claims, nil
}

// allowSubscribe decides whether the client may subscribe to ch: with a
// subscription token, the Subscribe hook, or the channel options.
func (c *Client) allowSubscribe(ch, tok string, data json.RawMessage) (SubscribeOptions, error) {
	cfg := &c.p.cfg
	var opts SubscribeOptions
	switch {
	case tok != "" && cfg.SubscriptionToken != nil:
		claims, err := c.verifySubscriptionToken(ch, tok)
		if err != nil {
			return opts, err
		}
		opts = SubscribeOptions{ChanInfo: claims.Info, ExpireAt: claims.ExpireAt}
	case cfg.Hooks.Subscribe != nil:
		r, err := callHook(c, "Subscribe", func() (SubscribeReply, error) {
			return cfg.Hooks.Subscribe(c, SubscribeEvent{Channel: ch, Token: tok, Data: data})
		})
		if err != nil {
			return opts, err
		}
		opts = r.Options
	case cfg.Channels.Subscribe:
	default:
		return opts, ErrorPermissionDenied
	}
	if !opts.ExpireAt.IsZero() && !opts.ExpireAt.After(time.Now()) {
		return opts, ErrorTokenExpired
	}
	return opts, nil
}

// subscribe subscribes the client to ch (its publications being held by
// the caller) and builds the subscribe result, with the publications
// recovered when req asks for recovery. It returns the offset up to which
// the result covers the channel.
func (c *Client) subscribe(ch string, opts SubscribeOptions, req *wire.SubscribeRequest, server bool) (*wire.SubscribeResult, uint64, error) {
	cfg := &c.p.cfg
	if err := c.peer.Subscribe(ch); err != nil {
		switch {
		case errors.Is(err, engine.ErrTooManyTopics):
			if server {
				return nil, 0, &Disconnect{wire.DisconnectChannelLimit, "channel limit"}
			}
			return nil, 0, ErrorLimitExceeded
		case errors.Is(err, engine.ErrClosed):
			return nil, 0, &Disconnect{wire.DisconnectConnectionClosed, "connection closed"}
		}
		return nil, 0, err
	}
	res := &wire.SubscribeResult{Data: opts.Data}
	s := &subscription{chanInfo: opts.ChanInfo, expireAt: opts.ExpireAt}
	if !opts.ExpireAt.IsZero() {
		res.Expires, res.TTL = true, ttlOf(opts.ExpireAt)
	}
	var top uint64
	positioned := opts.Positioned || opts.Recoverable || cfg.Channels.ForceRecovery
	recoverable := opts.Recoverable || cfg.Channels.ForceRecovery
	if (req.Positioned || req.Recoverable || req.Recover) && (!positioned || !recoverable) && c.mayRecover(ch) {
		positioned = true
		recoverable = recoverable || req.Recoverable || req.Recover
	}
	if hist, ok := c.p.e.Node().(backends.History); ok && positioned {
		hreq := backends.HistoryRequest{}
		if req.Recover && recoverable {
			hreq.Since = &backends.StreamPosition{Offset: req.Offset, Epoch: req.Epoch}
			hreq.Limit = cfg.RecoveryMaxPublicationLimit + 1
		}
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		h, err := hist.History(ctx, ch, hreq)
		cancel()
		if err != nil {
			_ = c.peer.Unsubscribe(ch)
			return nil, 0, fmt.Errorf("centrifugo: history of %q: %w", ch, err)
		}
		top = h.Offset
		res.Positioned, res.Recoverable = true, recoverable
		res.Epoch, res.Offset = h.Epoch, h.Offset
		if hreq.Since != nil {
			res.WasRecovering = true
			pubs := h.Publications
			switch {
			case h.Epoch != req.Epoch || req.Offset > h.Offset:
				// Another epoch, or a position the channel never had.
			case req.Offset == h.Offset:
				res.Recovered = true
			case len(pubs) > 0 && len(pubs) <= cfg.RecoveryMaxPublicationLimit &&
				pubs[0].Offset == req.Offset+1 && pubs[len(pubs)-1].Offset == h.Offset:
				res.Recovered = true
				res.Publications = make([]wire.Publication, len(pubs))
				for i, p := range pubs {
					res.Publications[i] = wire.Publication{Data: dataJSON(p.Data), Offset: p.Offset}
				}
			}
			if !res.Recovered && req.Flag&flagRejectUnrecovered != 0 {
				_ = c.peer.Unsubscribe(ch)
				return nil, 0, ErrorUnrecoverablePosition
			}
		}
	}
	if req.JoinLeave && (cfg.Channels.JoinLeave || opts.JoinLeave) {
		if err := c.peer.Subscribe(joinLeaveTopic(ch)); err != nil {
			_ = c.peer.Unsubscribe(ch)
			if errors.Is(err, engine.ErrTooManyTopics) {
				return nil, 0, ErrorLimitExceeded
			}
			return nil, 0, err
		}
		s.listens = true
	}
	if cfg.Channels.TrackPresence {
		if pr, ok := c.presenceBackend(); ok {
			ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
			err := pr.AddPresence(ctx, ch, c.presenceInfo(opts.ChanInfo), cfg.PresenceTTL)
			cancel()
			if err != nil {
				c.undoSubscribe(ch, s)
				return nil, 0, fmt.Errorf("centrifugo: presence in %q: %w", ch, err)
			}
			s.presence = true
		}
	}
	s.announce = cfg.Channels.JoinLeave || opts.JoinLeave
	c.mu.Lock()
	if c.closed {
		// The connection closed meanwhile; its cleanup does not know of
		// this subscription.
		c.mu.Unlock()
		c.undoSubscribe(ch, s)
		return nil, 0, &Disconnect{wire.DisconnectConnectionClosed, "connection closed"}
	}
	c.subs[ch] = s
	if !s.expireAt.IsZero() {
		s.timer = time.AfterFunc(time.Until(s.expireAt), func() { c.checkSubExpired(ch, s) })
	}
	c.mu.Unlock()
	if s.announce {
		c.announceJoinLeave(ch, s, "join")
	}
	return res, top, nil
}

// joinLeavePrefix starts the topic carrying a channel's join and leave
// pushes, followed by a hash of the channel name (so that it fits the
// topic length whatever the channel's); its NUL byte keeps clients from
// naming it (checkChannel). Topics starting with NUL are the protocols'
// own: applications should not publish to them.
const joinLeavePrefix = "\x00centrifugo.joinleave:"

func joinLeaveTopic(ch string) string {
	sum := sha256.Sum256([]byte(ch))
	return joinLeavePrefix + hex.EncodeToString(sum[:16])
}

// announceJoinLeave tells the channel's listening subscribers, on every
// node, that the client joined or left (kind "join" or "leave"): a
// transient publication holding the whole push, channel included.
func (c *Client) announceJoinLeave(ch string, s *subscription, kind string) {
	info := &wire.JoinLeave{Info: wire.ClientInfo{User: c.user, Client: c.id, ConnInfo: validJSON(c.info), ChanInfo: validJSON(s.chanInfo)}}
	push := wire.Push{Channel: ch, Join: info}
	if kind == "leave" {
		push = wire.Push{Channel: ch, Leave: info}
	}
	b, err := json.Marshal(push)
	if err == nil {
		err = c.p.e.Node().Publish(context.Background(), backends.Publication{Topic: joinLeaveTopic(ch), Data: b, Transient: true})
	}
	if err != nil {
		c.p.e.ReportError(c.peer, fmt.Errorf("centrifugo: announce %s in %q: %w", kind, ch, err))
	}
}

// dropAll is a Release coverage that drops every held publication of ch,
// for a subscription that failed.
func dropAll(ch string) map[string]uint64 { return map[string]uint64{ch: math.MaxUint64} }

// mayRecover reports whether the client may ask for positions and
// recovery in ch: when Channels.AllowRecovery is set, or when it may read
// the channel's history (recovery reads it).
func (c *Client) mayRecover(ch string) bool {
	cfg := &c.p.cfg
	switch {
	case cfg.Channels.AllowRecovery:
		return true
	case cfg.Hooks.History != nil:
		_, err := callHook(c, "History", func() (struct{}, error) { return struct{}{}, cfg.Hooks.History(c, ch) })
		return err == nil
	}
	return cfg.Channels.History
}

// undoSubscribe undoes what subscribe did for ch before it recorded s.
func (c *Client) undoSubscribe(ch string, s *subscription) {
	_ = c.peer.Unsubscribe(ch)
	if s.listens {
		_ = c.peer.Unsubscribe(joinLeaveTopic(ch))
	}
	if s.presence {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.removePresence(ctx, ch)
		cancel()
	}
}

// flagRejectUnrecovered is the subscribe flag of centrifuge-js asking for
// error 112 rather than an unrecovered subscription.
const flagRejectUnrecovered = 2

// dataJSON returns publication data as JSON for a reply: JSON as it is
// (compacted), other text as a JSON string.
func dataJSON(b []byte) json.RawMessage {
	return appendData(nil, b)
}

// checkSubExpired unsubscribes a client whose subscription expired
// without a sub_refresh (2501: it subscribes again, with a new token).
func (c *Client) checkSubExpired(ch string, s *subscription) {
	c.mu.Lock()
	cur := c.subs[ch]
	exp := s.expireAt
	c.mu.Unlock()
	if cur != s || exp.IsZero() {
		return
	}
	if wait := time.Until(exp); wait > 0 {
		c.mu.Lock()
		s.timer.Reset(wait)
		c.mu.Unlock()
		return
	}
	_ = c.unsubscribeServer(ch, wire.UnsubscribeSubscriptionExpire, "subscription expired")
}

// leave removes the client from ch: engine topic, presence, hook.
func (c *Client) leave(ch string) (bool, error) {
	c.mu.Lock()
	s := c.subs[ch]
	delete(c.subs, ch)
	c.mu.Unlock()
	if s == nil {
		return false, nil
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	err := c.peer.Unsubscribe(ch)
	if s.listens {
		_ = c.peer.Unsubscribe(joinLeaveTopic(ch))
	}
	if s.announce {
		c.announceJoinLeave(ch, s, "leave")
	}
	if s.presence {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		c.removePresence(ctx, ch)
		cancel()
	}
	if h := c.p.cfg.Hooks.Unsubscribe; h != nil {
		c.runHook("Unsubscribe", func() { h(c, ch) })
	}
	return true, err
}

// unsubscribeServer removes the client from ch and tells it with an
// unsubscribe push.
func (c *Client) unsubscribeServer(ch string, code uint32, reason string) error {
	left, err := c.leave(ch)
	if !left {
		return err
	}
	frame, _ := appendPushEvent(c.codec, wire.Push{Channel: ch, Unsubscribe: &wire.UnsubscribePush{Code: code, Reason: reason}})
	if perr := c.peer.PushFrame(frame); perr != nil && err == nil {
		err = perr
	}
	return err
}

// appendPushEvent appends a push as one event of the codec's transport.
func appendPushEvent(cd *codec, push wire.Push) ([]byte, error) {
	if cd.uni {
		return appendEvent(nil, push)
	}
	return appendEvent(nil, wire.Reply{Push: &push})
}

func (c *Client) cmdUnsubscribe(req *wire.UnsubscribeRequest) error {
	if checkChannel(req.Channel) != nil {
		return ErrorBadRequest
	}
	_, err := c.leave(req.Channel)
	return err
}

func (c *Client) cmdPublish(req *wire.PublishRequest) error {
	cfg := &c.p.cfg
	ch := req.Channel
	if checkChannel(ch) != nil || len(req.Data) == 0 {
		return ErrorBadRequest
	}
	data := req.Data
	switch {
	case cfg.Hooks.Publish != nil:
		r, err := callHook(c, "Publish", func() (PublishReply, error) {
			return cfg.Hooks.Publish(c, PublishEvent{Channel: ch, Data: req.Data})
		})
		if err != nil {
			return err
		}
		if r.Skip {
			return nil
		}
		if r.Data != nil {
			data = r.Data
		}
	case cfg.Channels.Publish && c.subscribed(ch):
	default:
		return ErrorPermissionDenied
	}
	err := c.p.e.Publish(ch, data)
	if errors.Is(err, engine.ErrTooLarge) {
		return ErrorLimitExceeded
	}
	return err
}

// allowRead checks a history or presence command with its hook, or the
// channel options (the client must then be subscribed).
func (c *Client) allowRead(name string, hook func(*Client, string) error, allowed bool, ch string) error {
	if checkChannel(ch) != nil {
		return ErrorBadRequest
	}
	if hook != nil {
		_, err := callHook(c, name, func() (struct{}, error) { return struct{}{}, hook(c, ch) })
		return err
	}
	if !allowed || !c.subscribed(ch) {
		return ErrorPermissionDenied
	}
	return nil
}

func (c *Client) presenceFor(ch string) (backends.Presence, error) {
	cfg := &c.p.cfg
	if err := c.allowRead("Presence", cfg.Hooks.Presence, cfg.Channels.Presence, ch); err != nil {
		return nil, err
	}
	pr, ok := c.presenceBackend()
	if !ok || !cfg.Channels.TrackPresence {
		return nil, ErrorNotAvailable
	}
	return pr, nil
}

func (c *Client) cmdPresence(ch string) (*wire.PresenceResult, error) {
	pr, err := c.presenceFor(ch)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	m, err := pr.Presence(ctx, ch)
	if err != nil {
		return nil, err
	}
	res := &wire.PresenceResult{Presence: make(map[string]wire.ClientInfo, len(m))}
	for id, info := range m {
		res.Presence[id] = wire.ClientInfo{User: info.User, Client: info.Client, ConnInfo: validJSON(info.ConnInfo), ChanInfo: validJSON(info.ChanInfo)}
	}
	return res, nil
}

// validJSON returns b when it is JSON, else nil: info is embedded raw.
func validJSON(b []byte) json.RawMessage {
	if len(b) == 0 || !json.Valid(b) {
		return nil
	}
	return dataJSON(b)
}

func (c *Client) cmdPresenceStats(ch string) (*wire.PresenceStatsResult, error) {
	pr, err := c.presenceFor(ch)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	clients, users, err := pr.PresenceStats(ctx, ch)
	if err != nil {
		return nil, err
	}
	return &wire.PresenceStatsResult{NumClients: uint32(clients), NumUsers: uint32(users)}, nil
}

func (c *Client) cmdHistory(req *wire.HistoryRequest) (*wire.HistoryResult, error) {
	cfg := &c.p.cfg
	if err := c.allowRead("History", cfg.Hooks.History, cfg.Channels.History, req.Channel); err != nil {
		return nil, err
	}
	hist, ok := c.p.e.Node().(backends.History)
	if !ok {
		return nil, ErrorNotAvailable
	}
	limit := int(req.Limit)
	if limit < 0 || limit > cfg.HistoryMaxPublicationLimit {
		limit = cfg.HistoryMaxPublicationLimit
	}
	hreq := backends.HistoryRequest{Limit: limit, Reverse: req.Reverse}
	if req.Since != nil {
		hreq.Since = &backends.StreamPosition{Offset: req.Since.Offset, Epoch: req.Since.Epoch}
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	h, err := hist.History(ctx, req.Channel, hreq)
	if err != nil {
		return nil, err
	}
	if req.Since != nil && req.Since.Epoch != h.Epoch {
		return nil, ErrorUnrecoverablePosition
	}
	res := &wire.HistoryResult{Epoch: h.Epoch, Offset: h.Offset}
	for _, p := range h.Publications {
		res.Publications = append(res.Publications, wire.Publication{Data: dataJSON(p.Data), Offset: p.Offset})
	}
	return res, nil
}

func (c *Client) cmdRPC(req *wire.RPCRequest) (*wire.RPCResult, error) {
	h := c.p.cfg.Hooks.RPC
	if h == nil {
		return nil, ErrorMethodNotFound
	}
	r, err := callHook(c, "RPC", func() (RPCReply, error) { return h(c, RPCEvent{Method: req.Method, Data: req.Data}) })
	if err != nil {
		return nil, err
	}
	if len(r.Data) > 0 && !json.Valid(r.Data) {
		c.p.e.ReportError(c.peer, fmt.Errorf("centrifugo: RPC hook for %q returned data that is not JSON", req.Method))
		return nil, ErrorInternal
	}
	return &wire.RPCResult{Data: dataJSONOrNil(r.Data)}, nil
}

func dataJSONOrNil(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return dataJSON(b)
}

func (c *Client) cmdRefresh(req *wire.RefreshRequest) (*wire.RefreshResult, error) {
	cfg := &c.p.cfg
	var exp time.Time
	switch {
	case req.Token != "" && cfg.Token != nil:
		claims, err := cfg.Token.VerifyConnect(req.Token)
		switch {
		case errors.Is(err, token.ErrExpired):
			return nil, ErrorTokenExpired
		case err != nil:
			return nil, DisconnectInvalidToken
		case claims.UserID != c.user:
			return nil, DisconnectInvalidToken
		}
		exp = claims.ExpireAt
	case cfg.Hooks.Refresh != nil:
		r, err := callHook(c, "Refresh", func() (RefreshReply, error) { return cfg.Hooks.Refresh(c, RefreshEvent{Token: req.Token}) })
		if err != nil {
			return nil, err
		}
		if r.Expired {
			return nil, DisconnectExpired
		}
		exp = r.ExpireAt
	default:
		return nil, ErrorNotAvailable
	}
	c.mu.Lock()
	c.expireAt = exp
	if c.expT != nil && !exp.IsZero() {
		c.expT.Reset(time.Until(exp))
	} else if c.expT == nil && !exp.IsZero() && !c.closed {
		c.expT = time.AfterFunc(time.Until(exp), c.checkExpired)
	}
	c.mu.Unlock()
	res := &wire.RefreshResult{Client: c.id, Version: cfg.Version}
	if !exp.IsZero() {
		res.Expires, res.TTL = true, ttlOf(exp)
	}
	return res, nil
}

func (c *Client) cmdSubRefresh(req *wire.SubRefreshRequest) (*wire.SubRefreshResult, error) {
	cfg := &c.p.cfg
	ch := req.Channel
	if checkChannel(ch) != nil {
		return nil, ErrorBadRequest
	}
	if !c.subscribed(ch) {
		return nil, ErrorPermissionDenied
	}
	var exp time.Time
	switch {
	case req.Token != "" && cfg.SubscriptionToken != nil:
		claims, err := c.verifySubscriptionToken(ch, req.Token)
		if err != nil {
			return nil, err
		}
		exp = claims.ExpireAt
	case cfg.Hooks.SubRefresh != nil:
		r, err := callHook(c, "SubRefresh", func() (SubRefreshReply, error) {
			return cfg.Hooks.SubRefresh(c, SubRefreshEvent{Channel: ch, Token: req.Token})
		})
		if err != nil {
			return nil, err
		}
		if r.Expired {
			return nil, c.unsubscribeServer(ch, wire.UnsubscribeSubscriptionExpire, "subscription expired")
		}
		exp = r.ExpireAt
	default:
		return nil, ErrorNotAvailable
	}
	c.mu.Lock()
	if s := c.subs[ch]; s != nil {
		s.expireAt = exp
		if s.timer != nil && !exp.IsZero() {
			s.timer.Reset(time.Until(exp))
		} else if s.timer == nil && !exp.IsZero() {
			s.timer = time.AfterFunc(time.Until(exp), func() { c.checkSubExpired(ch, s) })
		}
	}
	c.mu.Unlock()
	res := &wire.SubRefreshResult{}
	if !exp.IsZero() {
		res.Expires, res.TTL = true, ttlOf(exp)
	}
	return res, nil
}
