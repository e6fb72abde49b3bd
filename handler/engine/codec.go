package engine

import (
	"errors"
	"sync"
	"unsafe"

	gojson "github.com/goccy/go-json"
)

// Codec is a wire protocol's encoding of frames. A frame is a complete piece
// of the stream (usually one SSE event) without its event id: the writer
// appends the id with AppendID when it writes the frame, so that one frame's
// bytes can be shared by every subscriber of a publication.
//
// Codecs are compared by identity: use one value per protocol.
type Codec interface {
	// AppendSend appends the frame of a message sent to one peer.
	AppendSend(dst []byte, text []byte) []byte
	// AppendPublication appends the frame of a publication on topic. offset
	// is its number in the topic's history (see backends.History), 0 when
	// the backend does not number publications.
	AppendPublication(dst []byte, topic string, text []byte, offset uint64) []byte
	// AppendID appends what precedes the frame numbered seq of peer p on the
	// wire (for example "id: …\n"), or nothing. mark is the frame's backend
	// mark (see package backends), which a protocol that resumes with event
	// ids must put in the id for resume on another node to be exact.
	AppendID(dst []byte, p *Peer, seq, mark uint64) []byte
	// AppendClose appends the last frame of a peer the server closed.
	AppendClose(dst []byte, p *Peer, d CloseDetails) []byte
	// AppendHeartbeat appends what keeps an idle stream open (a comment).
	AppendHeartbeat(dst []byte) []byte
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// encodeFrame runs enc on a pooled buffer and returns an exactly sized copy:
// one allocation per frame however it is built.
func encodeFrame(enc func(dst []byte) []byte) []byte {
	bp := scratchPool.Get().(*[]byte)
	b := enc((*bp)[:0])
	frame := make([]byte, len(b))
	copy(frame, b)
	if cap(b) <= 64<<10 {
		*bp = b
		scratchPool.Put(bp)
	}
	return frame
}

// stringBytes returns the bytes of s without copying; they must not be
// modified.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func marshalJSON(v any) ([]byte, error) { return gojson.Marshal(v) }

// ErrHookPanicked is returned for an upstream message whose Message hook
// panicked; the panic went to the Error hook.
var ErrHookPanicked = errors.New("ssebridge: Message hook panicked")
