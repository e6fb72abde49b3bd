package wire

// Error codes of command replies, as Centrifugo defines them.
var (
	ErrorInternal              = &Error{Code: 100, Message: "internal server error", Temporary: true}
	ErrorUnauthorized          = &Error{Code: 101, Message: "unauthorized"}
	ErrorUnknownChannel        = &Error{Code: 102, Message: "unknown channel"}
	ErrorPermissionDenied      = &Error{Code: 103, Message: "permission denied"}
	ErrorMethodNotFound        = &Error{Code: 104, Message: "method not found"}
	ErrorAlreadySubscribed     = &Error{Code: 105, Message: "already subscribed"}
	ErrorLimitExceeded         = &Error{Code: 106, Message: "limit exceeded"}
	ErrorBadRequest            = &Error{Code: 107, Message: "bad request"}
	ErrorNotAvailable          = &Error{Code: 108, Message: "not available"}
	ErrorTokenExpired          = &Error{Code: 109, Message: "token expired"}
	ErrorExpired               = &Error{Code: 110, Message: "expired"}
	ErrorTooManyRequests       = &Error{Code: 111, Message: "too many requests", Temporary: true}
	ErrorUnrecoverablePosition = &Error{Code: 112, Message: "unrecoverable position"}
	// ErrorConcurrentPagination is newer than centrifuge v0.38 (for map
	// subscriptions, which ssebridge does not serve); listed for hooks.
	ErrorConcurrentPagination = &Error{Code: 113, Message: "concurrent pagination", Temporary: true}
)

// Unsubscribe codes: below 2500 the client stays unsubscribed, from 2500 it
// subscribes again.
const (
	UnsubscribeServer             = 2000
	UnsubscribeInsufficientState  = 2500
	UnsubscribeSubscriptionExpire = 2501
	UnsubscribeStateInvalidated   = 2502
)

// Disconnect codes: 3000–3499 (and 4000–4499) make centrifuge-js
// reconnect; 3500–3999 (and 4500–4999) are final.
const (
	DisconnectConnectionClosed   = 3000
	DisconnectShutdown           = 3001
	DisconnectServerError        = 3004
	DisconnectExpired            = 3005
	DisconnectSubExpired         = 3006
	DisconnectSlow               = 3008
	DisconnectWriteError         = 3009
	DisconnectInsufficientState  = 3010
	DisconnectForceReconnect     = 3011
	DisconnectNoPong             = 3012
	DisconnectTooManyRequests    = 3013
	DisconnectStateInvalidated   = 3014
	DisconnectInvalidToken       = 3500
	DisconnectBadRequest         = 3501
	DisconnectStale              = 3502
	DisconnectForceNoReconnect   = 3503
	DisconnectConnectionLimit    = 3504
	DisconnectChannelLimit       = 3505
	DisconnectInappropriateProto = 3506
	DisconnectPermissionDenied   = 3507
	DisconnectNotAvailable       = 3508
	DisconnectTooManyErrors      = 3509
)

// Reconnects reports whether centrifuge-js reconnects after a disconnect
// with code.
func Reconnects(code uint32) bool {
	return !(code >= 3500 && code < 4000 || code >= 4500 && code < 5000)
}
