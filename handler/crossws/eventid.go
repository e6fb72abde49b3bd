package crossws

import (
	"strconv"
	"strings"

	"github.com/ssebridge/ssebridge/handler/engine"
)

// Event ids. Every event that can be resumed from carries an SSE id of the
// form "<peer id>.<seq>", where seq numbers the peer's frames from 1 (the
// crossws-id event carries seq 0, or on resume the seq the client had). The
// browser sends the last one back as Last-Event-ID when it reconnects, which
// is how a reconnecting stream finds its peer and what it missed. The close
// event carries "<peer id>.closed": a reconnection that presents it is told
// (204) that the peer is gone for good.

// closedMarker ends the event id of a close event.
const closedMarker = "closed"

// maxEventIDLength bounds a Last-Event-ID worth parsing.
const maxEventIDLength = engine.IDLength + 1 + 20

// appendEventID appends "<id>.<seq>".
func appendEventID(dst []byte, id string, seq uint64) []byte {
	dst = append(dst, id...)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, seq, 10)
}

// parseEventID parses a Last-Event-ID. ok is false for anything this server
// did not write (such ids are ignored: the client gets a new peer).
func parseEventID(s string) (id string, seq uint64, closed, ok bool) {
	if len(s) > maxEventIDLength {
		return "", 0, false, false
	}
	id, rest, found := strings.Cut(s, ".")
	if !found || !engine.ValidID(id) {
		return "", 0, false, false
	}
	if rest == closedMarker {
		return id, 0, true, true
	}
	if rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return "", 0, false, false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return "", 0, false, false
		}
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return "", 0, false, false
	}
	return id, seq, false, true
}
