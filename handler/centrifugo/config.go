package centrifugo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ssebridge/ssebridge/handler/centrifugo/token"
	"github.com/ssebridge/ssebridge/handler/centrifugo/wire"
	"github.com/ssebridge/ssebridge/handler/engine"
)

// Defaults of Config, Centrifugo's where the option is theirs.
const (
	DefaultSSEHandlerPrefix            = "/connection/sse"     // sse.handler_prefix
	DefaultUniSSEHandlerPrefix         = "/connection/uni_sse" // uni_sse.handler_prefix
	DefaultEmulationHandlerPrefix      = "/emulation"          // emulation.handler_prefix
	DefaultMaxRequestBodySize          = 64 << 10              // *.max_request_body_size
	DefaultPingInterval                = 25 * time.Second      // client.ping_interval
	DefaultPongTimeout                 = 8 * time.Second       // client.pong_timeout
	DefaultChannelLimit                = 128                   // client.channel_limit
	DefaultPresenceTTL                 = 60 * time.Second      // presence_ttl
	DefaultHistoryMaxPublicationLimit  = 300                   // client.history_max_publication_limit
	DefaultRecoveryMaxPublicationLimit = 300                   // client.recovery_max_publication_limit
	DefaultVersion                     = "ssebridge"
	// maxCommandsPerRequest bounds the commands of one cf_connect or
	// emulation request.
	maxCommandsPerRequest = 128
	// maxChannelLength bounds channel names, as the engine bounds topics.
	maxChannelLength = engine.MaxTopicLength
)

// Config configures the Centrifugo transports. Zero values mean the
// defaults; option names follow Centrifugo's (in parentheses).
type Config struct {
	// DisableSSE turns off the bidirectional transport (sse.enabled):
	// /connection/sse and /emulation.
	DisableSSE bool
	// DisableUniSSE turns off the unidirectional transport
	// (uni_sse.enabled): /connection/uni_sse.
	DisableUniSSE bool
	// SSEHandlerPrefix (sse.handler_prefix), UniSSEHandlerPrefix
	// (uni_sse.handler_prefix) and EmulationHandlerPrefix
	// (emulation.handler_prefix) are the endpoints' paths.
	SSEHandlerPrefix       string
	UniSSEHandlerPrefix    string
	EmulationHandlerPrefix string
	// SSEMaxRequestBodySize (sse.max_request_body_size),
	// UniSSEMaxRequestBodySize (uni_sse.max_request_body_size) and
	// EmulationMaxRequestBodySize (emulation.max_request_body_size) bound
	// POST bodies; larger ones get 413. Default 65536 each.
	SSEMaxRequestBodySize       int
	UniSSEMaxRequestBodySize    int
	EmulationMaxRequestBodySize int

	// UniSSEConnectCodeToHTTPResponse
	// (uni_sse.connect_code_to_http_response), when set, answers a
	// unidirectional connect that the token or the Connecting hook
	// refuses with an HTTP response, before any stream, instead of a 200
	// stream holding a disconnect push: plain HTTP clients then see a
	// status.
	UniSSEConnectCodeToHTTPResponse *ConnectCodeToHTTPResponse

	// AllowedOrigins (client.allowed_origins) lists browser origins
	// allowed besides the server's own: "*", exact origins, or wildcard
	// subdomains ("https://*.example.com"). Requests without Origin are
	// always allowed; others get 403. Unlike Centrifugo, a page served by
	// the same host is allowed without being listed.
	AllowedOrigins []string
	// PingInterval (client.ping_interval) is how often the server pings
	// each connection (default 25 s); PongTimeout (client.pong_timeout,
	// default 8 s, negative disables) is how long a bidirectional client
	// has to answer before it is disconnected with 3012 "no pong".
	PingInterval time.Duration
	PongTimeout  time.Duration
	// ChannelLimit (client.channel_limit) bounds the channels of one
	// connection (default 128); the engine's MaxTopics bounds it too.
	ChannelLimit int
	// HistoryMaxPublicationLimit (client.history_max_publication_limit,
	// default 300) bounds the publications of one history answer;
	// RecoveryMaxPublicationLimit (client.recovery_max_publication_limit,
	// default 300) the publications recovered on subscribe: a client that
	// missed more gets recovered: false (error 112 "unrecoverable
	// position" if its subscribe asked for that, flag 2).
	HistoryMaxPublicationLimit  int
	RecoveryMaxPublicationLimit int
	// PresenceTTL is how long a client stays in a channel's presence
	// without a refresh (default 60 s); connections refresh theirs every
	// PingInterval.
	PresenceTTL time.Duration
	// Version is the server version sent in connect results.
	Version string

	// Token verifies connection tokens (the connect command's token).
	// When set, a connect without a token is refused with 101
	// "unauthorized" unless Hooks.Connecting accepts it.
	Token *token.Verifier
	// SubscriptionToken verifies subscription tokens; nil uses Token.
	SubscriptionToken *token.Verifier
	// Anonymous lets clients without a token connect (with user ""), as
	// client.allow_anonymous_connect_without_token. Without Token and
	// without Hooks.Connecting, every client connects anonymously.
	Anonymous bool

	// Channels is what clients may do in channels when no hook decides.
	// Channels are the engine's topics, shared by every namespace: a
	// client's publication reaches every subscriber of the topic, native
	// ones included, whatever namespace the Upgrade hook gave them.
	//
	// Without Hooks.Subscribe, a subscribe is allowed when
	// Channels.Subscribe is set (allow_subscribe_for_client), and so on.
	Channels ChannelOptions

	// Hooks are the application's callbacks.
	Hooks Hooks
}

// ConnectCodeToHTTPResponse maps the codes of refused connects to HTTP
// responses: the first transform whose Code is the refusal's (an error
// code, or a disconnect code) gives the response; a code no transform
// names gets 500.
type ConnectCodeToHTTPResponse struct {
	Transforms []ConnectCodeTransform
}

// ConnectCodeTransform is one code's HTTP response.
type ConnectCodeTransform struct {
	Code       uint32
	StatusCode int    // 400 to 599
	Body       string // "" for the error's message or the disconnect's reason
}

// response returns the status and body for code; an empty Body is the
// refusal's message.
func (m *ConnectCodeToHTTPResponse) response(code uint32, message string) (int, string) {
	for _, t := range m.Transforms {
		if t.Code == code {
			if t.Body == "" {
				return t.StatusCode, message
			}
			return t.StatusCode, t.Body
		}
	}
	return 500, "internal server error"
}

// ChannelOptions are the features and permissions of channels.
type ChannelOptions struct {
	// Subscribe, Publish, History and Presence let every connected client
	// subscribe, publish, read history and read presence (Centrifugo's
	// allow_subscribe_for_client, allow_publish_for_client,
	// allow_history_for_client, allow_presence_for_client), where no hook
	// decides. Publish, history and presence also require the client to be
	// subscribed, unless a hook allows otherwise.
	Subscribe, Publish, History, Presence bool
	// TrackPresence keeps each channel's presence (presence): who is
	// subscribed, by client and user. It needs a backend that keeps
	// presence (memory and Redis do).
	TrackPresence bool
	// ForceRecovery makes every subscription recoverable and positioned
	// (force_recovery), as if the client asked for it; a backend that
	// numbers publications is needed (memory and Redis do).
	ForceRecovery bool
	// JoinLeave announces each client that subscribes to or leaves a
	// channel (join_leave) to the channel's subscribers that asked for
	// join and leave pushes (centrifuge-js's joinLeave option). Each such
	// subscriber also counts one more topic against the engine's
	// MaxTopics.
	JoinLeave bool
	// AllowRecovery lets clients ask for positioned and recoverable
	// subscriptions (allow_recovery, allow_positioning). Without it, a
	// client gets them only where it may read the channel's history
	// (History above, or Hooks.History), since recovery reads it.
	AllowRecovery bool
}

func (c Config) withDefaults() (Config, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.SSEHandlerPrefix, DefaultSSEHandlerPrefix)
	def(&c.UniSSEHandlerPrefix, DefaultUniSSEHandlerPrefix)
	def(&c.EmulationHandlerPrefix, DefaultEmulationHandlerPrefix)
	def(&c.Version, DefaultVersion)
	size := func(n *int) {
		if *n <= 0 {
			*n = DefaultMaxRequestBodySize
		}
	}
	size(&c.SSEMaxRequestBodySize)
	size(&c.UniSSEMaxRequestBodySize)
	size(&c.EmulationMaxRequestBodySize)
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.PongTimeout > 0 && c.PongTimeout >= c.PingInterval {
		return c, fmt.Errorf("centrifugo: pong timeout %v must be shorter than the ping interval %v", c.PongTimeout, c.PingInterval)
	}
	if c.ChannelLimit <= 0 {
		c.ChannelLimit = DefaultChannelLimit
	}
	if c.HistoryMaxPublicationLimit <= 0 {
		c.HistoryMaxPublicationLimit = DefaultHistoryMaxPublicationLimit
	}
	if c.RecoveryMaxPublicationLimit <= 0 {
		c.RecoveryMaxPublicationLimit = DefaultRecoveryMaxPublicationLimit
	}
	if c.PresenceTTL <= 0 {
		c.PresenceTTL = DefaultPresenceTTL
	}
	if c.PresenceTTL <= c.PingInterval {
		return c, fmt.Errorf("centrifugo: presence TTL %v must be longer than the ping interval %v, which refreshes it", c.PresenceTTL, c.PingInterval)
	}
	if c.SubscriptionToken == nil {
		c.SubscriptionToken = c.Token
	}
	if m := c.UniSSEConnectCodeToHTTPResponse; m != nil {
		for _, t := range m.Transforms {
			if t.StatusCode < 400 || t.StatusCode > 599 {
				return c, fmt.Errorf("centrifugo: connect code %d mapped to HTTP status %d: want 400 to 599", t.Code, t.StatusCode)
			}
		}
	}
	return c, nil
}

// Hooks are the application's callbacks; every one is optional. Hooks of
// one connection run one at a time, in the order of its commands.
//
// A hook refuses with an error: an *Error (see the Error… values) is sent
// to the client as the command's error, a *Disconnect closes the
// connection with its code, and any other error is logged and answered
// with 100 "internal server error".
type Hooks struct {
	// Connecting authenticates a connection before it is accepted. The
	// token, when there is one and Config.Token is set, is verified first:
	// e.Claims holds its claims. Without the hook, a verified token's
	// claims are used as they are.
	Connecting func(ctx context.Context, e ConnectEvent) (ConnectReply, error)
	// Connect runs when a connection is established, after its connect
	// reply is queued.
	Connect func(c *Client)
	// Subscribe decides a client's subscribe. A valid subscription token
	// allows it without the hook.
	Subscribe func(c *Client, e SubscribeEvent) (SubscribeReply, error)
	// Publish decides a client's publish; the reply may replace the data.
	Publish func(c *Client, e PublishEvent) (PublishReply, error)
	// RPC answers a client's rpc. Without the hook rpc gets 104 "method
	// not found".
	RPC func(c *Client, e RPCEvent) (RPCReply, error)
	// Message receives a client's asynchronous send.
	Message func(c *Client, data json.RawMessage)
	// History and Presence decide a client's history, presence and
	// presence_stats commands (the channel is in the event).
	History  func(c *Client, channel string) error
	Presence func(c *Client, channel string) error
	// SubRefresh decides a sub_refresh without a subscription token.
	SubRefresh func(c *Client, e SubRefreshEvent) (SubRefreshReply, error)
	// Refresh extends a connection whose ExpireAt passed, when the client
	// refreshes without a token (or Config.Token is not set).
	Refresh func(c *Client, e RefreshEvent) (RefreshReply, error)
	// Unsubscribe runs when a client left a channel (by its own request,
	// the server's, or its disconnect).
	Unsubscribe func(c *Client, channel string)
	// Disconnect runs once when a connection is gone.
	Disconnect func(c *Client, d Disconnect)
}

// ConnectEvent is what Hooks.Connecting sees.
type ConnectEvent struct {
	// Request is the stream request (valid only during the hook).
	Request engine.Request
	// Transport is "sse" or "uni_sse".
	Transport string
	// Token is the connect token ("" for none); Claims its verified claims
	// when Config.Token is set (nil otherwise).
	Token  string
	Claims *token.ConnectClaims
	// Data, Name, Version and Headers are what the client sent.
	Data    json.RawMessage
	Name    string
	Version string
	Headers map[string]string
	// Channels are the server-side subscriptions the client asks to
	// recover (connect subs).
	Channels []string
}

// ConnectReply is Hooks.Connecting's answer.
type ConnectReply struct {
	// UserID identifies the user ("" for anonymous).
	UserID string
	// ExpireAt, when set, is when the connection expires unless the
	// client refreshes it (refresh command) before.
	ExpireAt time.Time
	// Info is public data about the connection, shown in presence.
	Info json.RawMessage
	// Data is returned to the client in the connect result.
	Data json.RawMessage
	// Subscriptions are server-side subscriptions made at once.
	Subscriptions map[string]SubscribeOptions
}

// SubscribeOptions are a subscription's options.
type SubscribeOptions struct {
	// ChanInfo is public data about the client in the channel (presence).
	ChanInfo json.RawMessage
	// Data is returned to the client in the subscribe result.
	Data json.RawMessage
	// ExpireAt, when set, is when the subscription expires unless the
	// client refreshes it (sub_refresh).
	ExpireAt time.Time
	// Recoverable and Positioned enable recovery and positions for the
	// subscription whatever the client asked.
	Recoverable, Positioned bool
	// JoinLeave announces the client's join and leave in this channel, as
	// ChannelOptions.JoinLeave does for every channel.
	JoinLeave bool
}

// SubscribeEvent is a client's subscribe.
type SubscribeEvent struct {
	Channel string
	Token   string
	Data    json.RawMessage
}

// SubscribeReply is Hooks.Subscribe's answer.
type SubscribeReply struct {
	Options SubscribeOptions
}

// PublishEvent is a client's publish.
type PublishEvent struct {
	Channel string
	Data    json.RawMessage
}

// PublishReply is Hooks.Publish's answer: Data, when set, is published
// instead of the client's; Skip answers the client without publishing
// (the hook published itself, say).
type PublishReply struct {
	Data json.RawMessage
	Skip bool
}

// RPCEvent is a client's rpc.
type RPCEvent struct {
	Method string
	Data   json.RawMessage
}

// RPCReply is Hooks.RPC's answer.
type RPCReply struct {
	Data json.RawMessage
}

// RefreshEvent is a client's refresh without a verifiable token.
type RefreshEvent struct{ Token string }

// RefreshReply extends the connection: a zero ExpireAt means it no longer
// expires; Expired disconnects it.
type RefreshReply struct {
	ExpireAt time.Time
	Expired  bool
}

// SubRefreshEvent is a client's sub_refresh without a verifiable token.
type SubRefreshEvent struct {
	Channel string
	Token   string
}

// SubRefreshReply extends a subscription; Expired unsubscribes it.
type SubRefreshReply struct {
	ExpireAt time.Time
	Expired  bool
}

// Error is a command's error, sent to the client with its code.
type Error = wire.Error

// Centrifugo's errors, for hooks to return.
var (
	ErrorInternal              = wire.ErrorInternal
	ErrorUnauthorized          = wire.ErrorUnauthorized
	ErrorUnknownChannel        = wire.ErrorUnknownChannel
	ErrorPermissionDenied      = wire.ErrorPermissionDenied
	ErrorMethodNotFound        = wire.ErrorMethodNotFound
	ErrorAlreadySubscribed     = wire.ErrorAlreadySubscribed
	ErrorLimitExceeded         = wire.ErrorLimitExceeded
	ErrorBadRequest            = wire.ErrorBadRequest
	ErrorNotAvailable          = wire.ErrorNotAvailable
	ErrorTokenExpired          = wire.ErrorTokenExpired
	ErrorExpired               = wire.ErrorExpired
	ErrorTooManyRequests       = wire.ErrorTooManyRequests
	ErrorUnrecoverablePosition = wire.ErrorUnrecoverablePosition
	ErrorConcurrentPagination  = wire.ErrorConcurrentPagination
)

// Disconnect closes a connection with a code and reason: 3000–3499 and
// 4000–4499 make centrifuge-js reconnect, 3500–3999 and 4500–4999 do not.
type Disconnect struct {
	Code   uint32
	Reason string
}

// Error implements error, so that hooks can return a *Disconnect.
func (d *Disconnect) Error() string {
	return fmt.Sprintf("centrifugo: disconnect %d: %s", d.Code, d.Reason)
}

// Reconnects reports whether centrifuge-js reconnects after d.
func (d Disconnect) Reconnects() bool { return wire.Reconnects(d.Code) }

// Centrifugo's disconnects, for hooks and Client.Disconnect.
var (
	DisconnectShutdown         = &Disconnect{wire.DisconnectShutdown, "shutdown"}
	DisconnectForceReconnect   = &Disconnect{wire.DisconnectForceReconnect, "force reconnect"}
	DisconnectForceNoReconnect = &Disconnect{wire.DisconnectForceNoReconnect, "force disconnect"}
	DisconnectInvalidToken     = &Disconnect{wire.DisconnectInvalidToken, "invalid token"}
	DisconnectBadRequest       = &Disconnect{wire.DisconnectBadRequest, "bad request"}
	DisconnectPermissionDenied = &Disconnect{wire.DisconnectPermissionDenied, "permission denied"}
	DisconnectConnectionLimit  = &Disconnect{wire.DisconnectConnectionLimit, "connection limit"}
	DisconnectExpired          = &Disconnect{wire.DisconnectExpired, "expired"}
	DisconnectNoPong           = &Disconnect{wire.DisconnectNoPong, "no pong"}
)

// refusal sorts a hook's error: a reply error, a disconnect, or (nil,
// nil) for an internal error to report.
func refusal(err error) (*Error, *Disconnect) {
	var e *Error
	if errors.As(err, &e) {
		return e, nil
	}
	var d *Disconnect
	if errors.As(err, &d) {
		return nil, d
	}
	return nil, nil
}
