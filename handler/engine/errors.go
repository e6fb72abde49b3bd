package engine

import (
	"errors"
	"fmt"
	"net/http"
)

// Close codes passed to the Close hook and written in the close event. They
// follow the WebSocket numbering (RFC 6455 §7.4.1) so that code ported from
// crossws or a WebSocket server reads the same; 3xxx codes are ssebridge's own
// (the range RFC 6455 gives to libraries), numbered like Centrifugo's where
// the meaning is the same.
const (
	// CloseNormal: the application closed the peer.
	CloseNormal = 1000
	// CloseGoingAway: the server is shutting down.
	CloseGoingAway = 1001
	// CloseAbnormal: the stream was lost and the client did not come back
	// within the reconnect grace period, or came back too late to be given
	// what it missed.
	CloseAbnormal = 1006
	// CloseInternalError: for applications that close a peer because of a
	// server-side failure.
	CloseInternalError = 1011
	// CloseSlowConsumer: the peer's outbound queue overflowed because its
	// client did not read fast enough.
	CloseSlowConsumer = 3008
)

// Errors returned by the engine. They are wrapped with context; test with
// errors.Is.
var (
	// ErrClosed: the peer (or the engine) is closed.
	ErrClosed = errors.New("ssebridge: peer closed")
	// ErrSlowConsumer: the frame did not fit in the peer's outbound queue;
	// the peer has been closed with CloseSlowConsumer.
	ErrSlowConsumer = errors.New("ssebridge: slow consumer: outbound queue full")
	// ErrShuttingDown: the engine no longer accepts new streams.
	ErrShuttingDown = errors.New("ssebridge: shutting down")
	// ErrTooManyTopics: the peer already has Config.MaxTopics subscriptions.
	ErrTooManyTopics = errors.New("ssebridge: too many topics")
	// ErrInvalidTopic: a topic name is empty or longer than MaxTopicLength.
	ErrInvalidTopic = errors.New("ssebridge: invalid topic name")
	// ErrTooLarge: a message is larger than a peer's whole queue
	// (Config.QueueSize); it is refused without closing anybody.
	ErrTooLarge = errors.New("ssebridge: message larger than the queue")
	// ErrTooManyPeers: the node already has Config.MaxPeers peers.
	ErrTooManyPeers = errors.New("ssebridge: too many peers")
)

// MaxTopicLength is the longest topic name accepted, in bytes.
const MaxTopicLength = 256

// RejectError is returned by an Upgrade hook to refuse a request with an HTTP
// status, a body and optional headers. Any other error from the hook is
// answered with 500 and reported to the Error hook.
type RejectError struct {
	Status int               // HTTP status, 400 to 599 (others become 403)
	Body   string            // plain-text response body
	Header map[string]string // extra response headers
}

// Reject returns a *RejectError with the given status and body.
func Reject(status int, body string) *RejectError {
	return &RejectError{Status: status, Body: body}
}

// Error describes the rejection.
func (e *RejectError) Error() string {
	return fmt.Sprintf("ssebridge: request rejected: %d %s", e.Status, http.StatusText(e.Status))
}

// PanicError wraps a value recovered from a panicking hook. It is passed to
// the Error hook.
type PanicError struct {
	Hook  string // "Open", "Message", …
	Value any    // what the hook panicked with
	Stack []byte // the goroutine's stack at the panic
}

// Error describes the panic.
func (e *PanicError) Error() string {
	return fmt.Sprintf("ssebridge: %s hook panicked: %v", e.Hook, e.Value)
}

// CloseDetails tells the Close hook why a peer closed.
type CloseDetails struct {
	Code   int    // a Close… constant, or the application's code
	Reason string // human-readable
}
