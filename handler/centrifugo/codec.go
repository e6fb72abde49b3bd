package centrifugo

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ssebridge/ssebridge/handler/centrifugo/wire"
	"github.com/ssebridge/ssebridge/handler/engine"
)

// codec writes Centrifugo frames: every reply or push is one SSE event,
// "data: <JSON>\n\n", with no id and no event name. The bidirectional
// transport wraps pushes in a Reply ({"push":{…}}); the unidirectional one
// sends them bare.
type codec struct{ uni bool }

var (
	bidiCodec engine.Codec = &codec{}
	uniCodec  engine.Codec = &codec{uni: true}
)

const (
	eventStart = "data: "
	eventEnd   = "\n\n"
)

// pushStart and pushEnd wrap a push for the transport.
func (c *codec) pushStart(dst []byte) []byte {
	dst = append(dst, eventStart...)
	if !c.uni {
		dst = append(dst, `{"push":`...)
	}
	return dst
}

func (c *codec) pushEnd(dst []byte) []byte {
	if !c.uni {
		dst = append(dst, '}')
	}
	return append(dst, eventEnd...)
}

// AppendSend writes what Peer.Send queues as an asynchronous message push.
func (c *codec) AppendSend(dst []byte, text []byte) []byte {
	dst = c.pushStart(dst)
	dst = append(dst, `{"message":{"data":`...)
	dst = appendData(dst, text)
	dst = append(dst, "}}"...)
	return c.pushEnd(dst)
}

// AppendPublication writes a publication push; text that is JSON is
// embedded as it is (compacted), other text as a JSON string.
func (c *codec) AppendPublication(dst []byte, topic string, text []byte, offset uint64) []byte {
	if strings.HasPrefix(topic, joinLeavePrefix) && isPushObject(text) {
		// A join or leave, the whole push ({"channel":…,"join":…}).
		dst = c.pushStart(dst)
		dst = append(dst, text...)
		return c.pushEnd(dst)
	}
	dst = c.pushStart(dst)
	dst = append(dst, `{"channel":`...)
	dst = appendString(dst, topic)
	dst = append(dst, `,"pub":{"data":`...)
	dst = appendData(dst, text)
	if offset > 0 {
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, offset, 10)
	}
	dst = append(dst, "}}"...)
	return c.pushEnd(dst)
}

// AppendID writes nothing: Centrifugo's events have no id.
func (c *codec) AppendID(dst []byte, _ *engine.Peer, _, _ uint64) []byte { return dst }

// AppendClose writes the disconnect push of a connection the server
// closes (none for code 3000).
func (c *codec) AppendClose(dst []byte, _ *engine.Peer, d engine.CloseDetails) []byte {
	code, reason := disconnectOf(d)
	if code == wire.DisconnectConnectionClosed {
		return dst
	}
	return c.appendDisconnect(dst, code, reason)
}

func (c *codec) appendDisconnect(dst []byte, code uint32, reason string) []byte {
	dst = c.pushStart(dst)
	dst = append(dst, `{"disconnect":{"code":`...)
	dst = strconv.AppendUint(dst, uint64(code), 10)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, reason)
	dst = append(dst, "}}"...)
	return c.pushEnd(dst)
}

// AppendHeartbeat writes a comment: it keeps proxies from cutting an idle
// stream. Centrifugo's pings ({}) are sent by the protocol on their own
// schedule.
func (c *codec) AppendHeartbeat(dst []byte) []byte { return append(dst, ":\n\n"...) }

// appendPing writes the server's ping, an empty reply or push.
func appendPing(dst []byte) []byte {
	dst = append(dst, eventStart...)
	dst = append(dst, wire.Ping...)
	return append(dst, eventEnd...)
}

// appendEvent writes v (a Reply or a Push) as one event.
func appendEvent(dst []byte, v any) ([]byte, error) {
	dst = append(dst, eventStart...)
	dst, err := wire.AppendJSON(dst, v)
	if err != nil {
		return dst, err
	}
	return append(dst, eventEnd...), nil
}

// disconnectOf maps a close to a Centrifugo disconnect code and reason.
// Codes of Centrifugo's ranges (3000–4999) are kept; the engine's
// WebSocket-style codes are translated.
func disconnectOf(d engine.CloseDetails) (uint32, string) {
	if d.Code >= 3000 && d.Code <= 4999 {
		reason := d.Reason
		if reason == "" {
			reason = defaultReason(uint32(d.Code))
		}
		return uint32(d.Code), reason
	}
	switch d.Code {
	case engine.CloseNormal:
		return wire.DisconnectConnectionClosed, "connection closed"
	case engine.CloseGoingAway:
		return wire.DisconnectShutdown, "shutdown"
	}
	return wire.DisconnectServerError, "internal server error"
}

// defaultReason is Centrifugo's reason for a disconnect code.
func defaultReason(code uint32) string {
	switch code {
	case wire.DisconnectConnectionClosed:
		return "connection closed"
	case wire.DisconnectShutdown:
		return "shutdown"
	case wire.DisconnectServerError:
		return "internal server error"
	case wire.DisconnectExpired:
		return "expired"
	case wire.DisconnectSubExpired:
		return "subscription expired"
	case wire.DisconnectSlow:
		return "slow"
	case wire.DisconnectWriteError:
		return "write error"
	case wire.DisconnectInsufficientState:
		return "insufficient state"
	case wire.DisconnectForceReconnect:
		return "force reconnect"
	case wire.DisconnectNoPong:
		return "no pong"
	case wire.DisconnectTooManyRequests:
		return "too many requests"
	case wire.DisconnectStateInvalidated:
		return "state invalidated"
	case wire.DisconnectInvalidToken:
		return "invalid token"
	case wire.DisconnectBadRequest:
		return "bad request"
	case wire.DisconnectStale:
		return "stale"
	case wire.DisconnectForceNoReconnect:
		return "force disconnect"
	case wire.DisconnectConnectionLimit:
		return "connection limit"
	case wire.DisconnectChannelLimit:
		return "channel limit"
	case wire.DisconnectInappropriateProto:
		return "inappropriate protocol"
	case wire.DisconnectPermissionDenied:
		return "permission denied"
	case wire.DisconnectNotAvailable:
		return "not available"
	case wire.DisconnectTooManyErrors:
		return "too many errors"
	}
	return ""
}

// appendData appends text as a JSON payload: as it is when it is JSON
// without line breaks, compacted when it has some, else as a JSON string.
func appendData(dst, text []byte) []byte {
	if len(text) == 0 {
		return append(dst, `""`...)
	}
	if mayBeJSON(text) && json.Valid(text) {
		if bytes.IndexAny(text, "\r\n") < 0 {
			return append(dst, text...)
		}
		buf := bytes.NewBuffer(dst)
		if json.Compact(buf, text) == nil {
			return buf.Bytes()
		}
	}
	return appendStringBytes(dst, text)
}

// isPushObject reports whether text can go into an event as it is: one
// JSON object on one line.
func isPushObject(text []byte) bool {
	return len(text) >= 2 && text[0] == '{' && bytes.IndexAny(text, "\r\n") < 0 && json.Valid(text)
}

// mayBeJSON reports whether text starts as a JSON value can (after
// whitespace): most plain text is told apart without running a JSON
// scanner, whose refusal allocates.
func mayBeJSON(text []byte) bool {
	for _, c := range text {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[', '"', '-', 't', 'f', 'n', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return true
		}
		return false
	}
	return false
}

func appendString(dst []byte, s string) []byte {
	return appendStringBytes(dst, []byte(s))
}

const hexDigits = "0123456789abcdef"

// appendStringBytes appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendStringBytes(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
