package crossws

import (
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/ssebridge/ssebridge/handler/engine"
	"github.com/ssebridge/ssebridge/handler/sse"
)

// codec writes crossws frames: "event: message" events whose data lines
// carry the payload, ids "<peer>.<seq>", a "close" event, comment
// heartbeats.
type codec struct{}

var theCodec engine.Codec = codec{}

func (codec) AppendSend(dst []byte, text []byte) []byte {
	return appendMessage(dst, text)
}

func (codec) AppendPublication(dst []byte, _ string, text []byte, _ uint64) []byte {
	return appendMessage(dst, text)
}

func appendMessage(dst, text []byte) []byte {
	dst = append(dst, "event: message\n"...)
	dst = sse.AppendDataBytes(dst, text)
	return sse.AppendEnd(dst)
}

func (codec) AppendID(dst []byte, p *engine.Peer, seq, mark uint64) []byte {
	dst = append(dst, "id: "...)
	dst = appendEventID(dst, p.ID(), seq, mark)
	return append(dst, '\n')
}

// closePayload is the data of the close event.
type closePayload struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func (codec) AppendClose(dst []byte, p *engine.Peer, d engine.CloseDetails) []byte {
	return appendCloseEvent(dst, p.ID(), d)
}

func (codec) AppendHeartbeat(dst []byte) []byte {
	return append(dst, ": ping\n\n"...)
}

// appendHello appends the event that tells the client its peer id; its event
// id is the client's position ("<peer>.0" for a new peer, the
// Last-Event-ID it presented on resume), so that a reconnection before any
// message resumes the same peer, and a repeated hello on resume does not
// move the client's position.
func appendHello(dst []byte, id string, last, mark uint64, retry time.Duration) []byte {
	dst = append(dst, "id: "...)
	dst = appendEventID(dst, id, last, mark)
	dst = append(dst, '\n')
	if retry > 0 {
		dst = sse.AppendRetry(dst, retry)
	}
	dst = append(dst, "event: crossws-id\n"...)
	dst = sse.AppendData(dst, id)
	return sse.AppendEnd(dst)
}

// appendCloseEvent appends the close event of peer id: its event id
// "<peer>.closed" makes the client's next reconnection end with 204, and its
// data is {"code":…,"reason":…}.
func appendCloseEvent(dst []byte, id string, d engine.CloseDetails) []byte {
	data, err := gojson.Marshal(closePayload(d))
	if err != nil { // cannot happen for an int and a string
		data = []byte(`{}`)
	}
	dst = append(dst, "id: "...)
	dst = append(dst, id...)
	dst = append(dst, "."+closedMarker+"\nevent: close\n"...)
	dst = sse.AppendDataBytes(dst, data)
	return sse.AppendEnd(dst)
}
