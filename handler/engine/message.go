package engine

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	gojson "github.com/goccy/go-json"
)

// Message is one upstream message given to the Message hook. Its bytes are
// valid only until the hook returns: copy what you keep.
type Message struct {
	data []byte
}

// Text returns the message as a string (a copy).
func (m Message) Text() string { return string(m.data) }

// Bytes returns the message bytes, valid until the hook returns.
func (m Message) Bytes() []byte { return m.data }

// Len returns the message length in bytes.
func (m Message) Len() int { return len(m.data) }

// JSON decodes the message as JSON into v.
func (m Message) JSON(v any) error { return gojson.Unmarshal(m.data, v) }

// String returns the text, so a Message prints as its content.
func (m Message) String() string { return string(m.data) }

// binaryPrefix starts the data URL that binary payloads become, as crossws
// sends them: SSE carries text only.
const binaryPrefix = "data:application/octet-stream;base64,"

// payloadText turns a value given to Send or Publish into the text sent on
// the wire:
//
//   - string: as is;
//   - []byte: a data URL "data:application/octet-stream;base64,…" (binary
//     cannot travel in SSE; crossws does the same);
//   - json.RawMessage: as is;
//   - nil: the empty string;
//   - bool, integers and floats: their decimal text, as JSON writes them;
//   - anything else: its JSON encoding.
//
// The returned bytes may alias v's string; they are only read.
func payloadText(v any) ([]byte, error) {
	switch t := v.(type) {
	case string:
		return stringBytes(t), nil
	case []byte:
		return binaryText(t), nil
	case json.RawMessage:
		return t, nil
	case nil:
		return nil, nil
	case bool:
		return strconv.AppendBool(nil, t), nil
	case int:
		return strconv.AppendInt(nil, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(nil, t, 10), nil
	default:
		return marshalJSON(v)
	}
}

// binaryText returns the data URL for b.
func binaryText(b []byte) []byte {
	out := make([]byte, len(binaryPrefix)+base64.StdEncoding.EncodedLen(len(b)))
	copy(out, binaryPrefix)
	base64.StdEncoding.Encode(out[len(binaryPrefix):], b)
	return out
}
