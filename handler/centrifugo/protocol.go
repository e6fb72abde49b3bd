package centrifugo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/handler/centrifugo/wire"
	"github.com/ssebridge/ssebridge/handler/engine"
)

// Protocol serves the Centrifugo transports on top of an engine.
type Protocol struct {
	e       *engine.Engine
	cfg     Config
	origins *engine.OriginPolicy

	mu    sync.Mutex
	users map[string]map[*Client]struct{} // local clients by user id
}

// New returns the protocol served on top of e.
func New(e *engine.Engine, cfg Config) (*Protocol, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	origins, err := engine.NewOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	return &Protocol{e: e, cfg: cfg, origins: origins, users: make(map[string]map[*Client]struct{})}, nil
}

// Config returns the configuration in effect, defaults applied.
func (p *Protocol) Config() Config { return p.cfg }

// Handles reports whether path is one of the protocol's endpoints.
func (p *Protocol) Handles(path string) bool {
	switch path {
	case p.cfg.SSEHandlerPrefix, p.cfg.EmulationHandlerPrefix:
		return !p.cfg.DisableSSE
	case p.cfg.UniSSEHandlerPrefix:
		return !p.cfg.DisableUniSSE
	}
	return false
}

// Serve answers a request for one of the protocol's endpoints (see
// Handles); other paths get 404.
func (p *Protocol) Serve(x engine.Exchange) {
	switch {
	case !p.Handles(x.Path()):
		engine.WriteError(x, http.StatusNotFound, "not found")
	case x.Path() == p.cfg.EmulationHandlerPrefix:
		p.serveEmulation(x)
	case x.Path() == p.cfg.SSEHandlerPrefix:
		p.serveStream(x, false)
	default:
		p.serveStream(x, true)
	}
}

// readBody reads a POST body of at most max bytes. It answers the request
// itself (413, 499) and returns ok false when it cannot.
func readBody(x engine.Exchange, max int) ([]byte, bool) {
	if n := x.ContentLength(); n > int64(max) {
		engine.WriteError(x, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes, the limit is %d", n, max))
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(x.Body(), int64(max)+1))
	switch {
	case err != nil:
		// The client went away, or sent a broken body.
		engine.WriteError(x, 499, "cannot read the request body")
		return nil, false
	case len(b) > max:
		engine.WriteError(x, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the limit of %d bytes", max))
		return nil, false
	}
	return b, true
}

// serveEmulation answers POST /emulation: the commands of a bidirectional
// connection, for its session on whichever node holds it.
func (p *Protocol) serveEmulation(x engine.Exchange) {
	cors, ok := p.origins.Check(x.Header("Origin"), x.Host())
	if !ok {
		engine.WriteError(x, http.StatusForbidden, "origin not allowed")
		return
	}
	switch x.Method() {
	case http.MethodPost:
	case http.MethodOptions:
		cors.Preflight(x, "POST, OPTIONS")
		return
	default:
		x.SetHeader("Allow", "POST, OPTIONS")
		engine.WriteError(x, http.StatusMethodNotAllowed, "method not allowed: POST emulation requests")
		return
	}
	cors.Set(x, "")
	body, ok := readBody(x, p.cfg.EmulationMaxRequestBodySize)
	if !ok {
		return
	}
	if ct := x.Header("Content-Type"); ct == "application/octet-stream" {
		engine.WriteError(x, http.StatusUnsupportedMediaType, "only the JSON protocol is served: send Content-Type: application/json")
		return
	}
	env, err := wire.DecodeEnvelope(body)
	if err != nil {
		engine.WriteError(x, http.StatusBadRequest, "bad emulation request: "+err.Error())
		return
	}
	if len(env.Node) > maxNodeLength {
		engine.WriteError(x, http.StatusBadRequest, "bad emulation request: node id too long")
		return
	}
	if env.Session == "" || !engine.ValidEphemeralID(env.Session) {
		engine.WriteError(x, http.StatusNotFound, "unknown session")
		return
	}
	u := engine.NewUpgrade(engine.NewRequest(x), engine.UpgradeMessage, env.Session)
	if !p.e.Upgrade(x, u) {
		return
	}
	if len(env.Data) == 0 {
		x.WriteHeader(http.StatusNoContent)
		return
	}
	if env.Data[0] == controlByte {
		engine.WriteError(x, http.StatusBadRequest, "bad emulation request: data starts with a NUL byte")
		return
	}
	// The session never moves: straight to the node the client names.
	err = p.e.UpstreamVia(x.Context(), env.Node, env.Session, env.Data)
	switch {
	case err == nil:
		x.WriteHeader(http.StatusNoContent)
	case errors.Is(err, backends.ErrUnknownSession):
		// The session, or the node holding it, is gone. centrifuge-js
		// (5.8) reconnects at once on 404.
		engine.WriteError(x, http.StatusNotFound, "unknown session")
	default:
		if !errors.Is(err, context.Canceled) {
			p.e.ReportError(nil, fmt.Errorf("centrifugo: emulation: %w", err))
		}
		engine.WriteError(x, http.StatusInternalServerError, "cannot deliver now")
	}
}

// maxNodeLength bounds the node id of an emulation envelope.
const maxNodeLength = 256

// serveStream answers GET or POST on /connection/sse (uni false) or
// /connection/uni_sse (uni true).
func (p *Protocol) serveStream(x engine.Exchange, uni bool) {
	cors, ok := p.origins.Check(x.Header("Origin"), x.Host())
	if !ok {
		engine.WriteError(x, http.StatusForbidden, "origin not allowed")
		return
	}
	max := p.cfg.SSEMaxRequestBodySize
	if uni {
		max = p.cfg.UniSSEMaxRequestBodySize
	}
	var raw []byte
	switch x.Method() {
	case http.MethodGet:
		raw = []byte(engine.NewRequest(x).Query().Get("cf_connect"))
	case http.MethodPost:
		if raw, ok = readBody(x, max); !ok {
			return
		}
	case http.MethodOptions:
		if x.Header("Origin") != "" && x.Header("Access-Control-Request-Method") != "" {
			cors.Preflight(x, "GET, POST, OPTIONS")
			return
		}
		fallthrough
	default:
		x.SetHeader("Allow", "GET, POST")
		engine.WriteError(x, http.StatusMethodNotAllowed, "method not allowed: GET (or POST) opens a stream")
		return
	}

	var (
		connect *wire.ConnectRequest
		connID  uint32
		rest    []wire.Command
	)
	if uni {
		req, err := wire.DecodeConnectRequest(raw)
		if err != nil {
			engine.WriteError(x, http.StatusBadRequest, "bad cf_connect: "+err.Error())
			return
		}
		connect = req
	} else {
		if len(raw) == 0 {
			engine.WriteError(x, http.StatusBadRequest, "missing cf_connect: a connect command is required")
			return
		}
		cmds, err := wire.DecodeCommands(raw, 0)
		if err != nil {
			engine.WriteError(x, http.StatusBadRequest, "bad cf_connect: "+err.Error())
			return
		}
		if len(cmds) > maxCommandsPerRequest {
			engine.WriteError(x, http.StatusBadRequest, fmt.Sprintf("bad cf_connect: %d commands, the limit is %d", len(cmds), maxCommandsPerRequest))
			return
		}
		if cmds[0].Connect == nil || cmds[0].ID == 0 {
			engine.WriteError(x, http.StatusBadRequest, "bad cf_connect: the first command must be connect, with an id")
			return
		}
		connect, connID, rest = cmds[0].Connect, cmds[0].ID, cmds[1:]
	}

	u := engine.NewUpgrade(engine.NewRequest(x), engine.UpgradeOpen, "")
	if !p.e.Upgrade(x, u) {
		return
	}
	c := newClient(p, uni)
	setStreamHeaders(x)
	cors.Set(x, "")
	for _, h := range u.Headers() {
		x.SetHeader(h[0], h[1])
	}
	if p.e.ShuttingDown() {
		c.refuse(x, connID, nil, DisconnectShutdown)
		return
	}
	reply, rerr, rdisc := c.authenticate(x, connect)
	if rerr != nil || rdisc != nil {
		if m := p.cfg.UniSSEConnectCodeToHTTPResponse; uni && m != nil {
			code, message := uint32(0), ""
			if rerr != nil {
				code, message = rerr.Code, rerr.Message
			} else {
				code, message = rdisc.Code, rdisc.Reason
			}
			status, body := m.response(code, message)
			engine.WriteError(x, status, body)
			return
		}
		c.refuse(x, connID, rerr, rdisc)
		return
	}
	st, err := p.e.OpenWith(x.Context(), x, u, c.codec, engine.PeerOptions{Hooks: c.engineHooks(), Ephemeral: true, Intercept: c.intercept, HelloFirst: true})
	if err != nil {
		d := &Disconnect{wire.DisconnectServerError, "internal server error"}
		switch {
		case errors.Is(err, engine.ErrShuttingDown):
			d = DisconnectShutdown
		case errors.Is(err, engine.ErrTooManyPeers):
			d = &Disconnect{wire.DisconnectConnectionLimit, "connection limit"}
		default:
			p.e.ReportError(nil, fmt.Errorf("centrifugo: open: %w", err))
		}
		c.refuse(x, connID, nil, d)
		return
	}
	c.prepare(st.Peer(), connID, connect, reply, rest)
	st.Run([]byte("\r\n"))
}

// setStreamHeaders sets Centrifugo's stream headers. (Connection:
// keep-alive is left to the runtime: it must not be sent over HTTP/2, and
// HTTP/1.1 keeps connections alive by default.)
func setStreamHeaders(x engine.Exchange) {
	x.SetHeader("Content-Type", "text/event-stream; charset=utf-8")
	x.SetHeader("Cache-Control", "private, no-cache, no-store, must-revalidate, max-age=0")
	x.SetHeader("Pragma", "no-cache")
	x.SetHeader("Expire", "0")
	x.SetHeader("X-Accel-Buffering", "no")
}

// Publish sends data to every subscriber of channel, on every node, with
// the next offset of the channel's history. It is the engine's Publish:
// subscribers of the same topic through the native protocol get it too.
func (p *Protocol) Publish(channel string, data []byte) error {
	if err := checkChannel(channel); err != nil {
		return err
	}
	return p.e.Publish(channel, rawJSON(data))
}

// checkChannel checks a channel name: 1 to 1024 bytes, no control
// characters (names starting with a NUL byte are the protocol's own, see
// control.go).
func checkChannel(ch string) error {
	if ch == "" || len(ch) > maxChannelLength {
		return fmt.Errorf("centrifugo: channel name of %d bytes (want 1 to %d)", len(ch), maxChannelLength)
	}
	for i := 0; i < len(ch); i++ {
		if ch[i] < 0x20 || ch[i] == 0x7f {
			return fmt.Errorf("centrifugo: channel name with a control character at byte %d", i)
		}
	}
	return nil
}

// Clients yields the connections of user on this node ("" for anonymous
// connections).
func (p *Protocol) Clients(user string) []*Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Client, 0, len(p.users[user]))
	for c := range p.users[user] {
		out = append(out, c)
	}
	return out
}

func (p *Protocol) addUser(c *Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := p.users[c.user]
	if set == nil {
		set = make(map[*Client]struct{})
		p.users[c.user] = set
	}
	set[c] = struct{}{}
}

func (p *Protocol) removeUser(c *Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if set := p.users[c.user]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(p.users, c.user)
		}
	}
}
