// Package wire is Centrifugo's JSON client protocol (centrifugal/protocol,
// client.proto) as centrifuge-js speaks it over SSE: the commands a client
// sends (in cf_connect and in /emulation envelopes), and the replies and
// pushes a server writes, one per SSE event.
//
// Decoding tolerates fields it does not know (newer clients send more), and
// keeps embedded payloads (data, info) as raw JSON, compacted so that a
// reply never holds a raw newline: every reply fits one SSE data line.
// Encoding writes the fields in the order Centrifugo does, leaving out
// empty ones.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	gojson "github.com/goccy/go-json"
)

// Raw is an embedded JSON payload (data, info), kept as the client sent
// it, compacted.
type Raw = json.RawMessage

// Command is one client command: an id (0 for a pong or a send) and one
// request. Exactly one request field is set after Decode.
type Command struct {
	ID            uint32                `json:"id,omitempty"`
	Connect       *ConnectRequest       `json:"connect,omitempty"`
	Subscribe     *SubscribeRequest     `json:"subscribe,omitempty"`
	Unsubscribe   *UnsubscribeRequest   `json:"unsubscribe,omitempty"`
	Publish       *PublishRequest       `json:"publish,omitempty"`
	Presence      *PresenceRequest      `json:"presence,omitempty"`
	PresenceStats *PresenceStatsRequest `json:"presence_stats,omitempty"`
	History       *HistoryRequest       `json:"history,omitempty"`
	Ping          *struct{}             `json:"ping,omitempty"`
	Send          *SendRequest          `json:"send,omitempty"`
	RPC           *RPCRequest           `json:"rpc,omitempty"`
	Refresh       *RefreshRequest       `json:"refresh,omitempty"`
	SubRefresh    *SubRefreshRequest    `json:"sub_refresh,omitempty"`
}

// Kind names the command's request ("connect", "subscribe", …), "pong" for
// an empty command, or "" when it holds none and is not a pong.
func (c *Command) Kind() string {
	switch {
	case c.Connect != nil:
		return "connect"
	case c.Subscribe != nil:
		return "subscribe"
	case c.Unsubscribe != nil:
		return "unsubscribe"
	case c.Publish != nil:
		return "publish"
	case c.Presence != nil:
		return "presence"
	case c.PresenceStats != nil:
		return "presence_stats"
	case c.History != nil:
		return "history"
	case c.Ping != nil:
		return "ping"
	case c.Send != nil:
		return "send"
	case c.RPC != nil:
		return "rpc"
	case c.Refresh != nil:
		return "refresh"
	case c.SubRefresh != nil:
		return "sub_refresh"
	case c.ID == 0:
		return "pong"
	}
	return ""
}

// ConnectRequest opens a connection. On the unidirectional transport it is
// the whole of cf_connect.
type ConnectRequest struct {
	Token   string                      `json:"token,omitempty"`
	Data    Raw                         `json:"data,omitempty"`
	Subs    map[string]SubscribeRequest `json:"subs,omitempty"`
	Name    string                      `json:"name,omitempty"`
	Version string                      `json:"version,omitempty"`
	Headers map[string]string           `json:"headers,omitempty"`
}

// SubscribeRequest subscribes to a channel, recovering from Offset and
// Epoch when Recover is set. In ConnectRequest.Subs only Recover, Offset and
// Epoch are used.
type SubscribeRequest struct {
	Channel     string `json:"channel,omitempty"`
	Token       string `json:"token,omitempty"`
	Recover     bool   `json:"recover,omitempty"`
	Epoch       string `json:"epoch,omitempty"`
	Offset      uint64 `json:"offset,omitempty"`
	Data        Raw    `json:"data,omitempty"`
	Positioned  bool   `json:"positioned,omitempty"`
	Recoverable bool   `json:"recoverable,omitempty"`
	JoinLeave   bool   `json:"join_leave,omitempty"`
	Delta       string `json:"delta,omitempty"`
	Flag        int64  `json:"flag,omitempty"`
}

// UnsubscribeRequest leaves a channel.
type UnsubscribeRequest struct {
	Channel string `json:"channel,omitempty"`
}

// PublishRequest publishes Data to a channel.
type PublishRequest struct {
	Channel string `json:"channel,omitempty"`
	Data    Raw    `json:"data,omitempty"`
}

// PresenceRequest asks who is in a channel.
type PresenceRequest struct {
	Channel string `json:"channel,omitempty"`
}

// PresenceStatsRequest asks how many clients and users are in a channel.
type PresenceStatsRequest struct {
	Channel string `json:"channel,omitempty"`
}

// StreamPosition is a place in a channel's history.
type StreamPosition struct {
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
}

// HistoryRequest asks for a channel's publications.
type HistoryRequest struct {
	Channel string          `json:"channel,omitempty"`
	Limit   int32           `json:"limit,omitempty"`
	Since   *StreamPosition `json:"since,omitempty"`
	Reverse bool            `json:"reverse,omitempty"`
}

// SendRequest is an asynchronous message to the server: no reply.
type SendRequest struct {
	Data Raw `json:"data,omitempty"`
}

// RPCRequest calls Method on the server.
type RPCRequest struct {
	Data   Raw    `json:"data,omitempty"`
	Method string `json:"method,omitempty"`
}

// RefreshRequest renews the connection's token.
type RefreshRequest struct {
	Token string `json:"token,omitempty"`
}

// SubRefreshRequest renews a subscription's token.
type SubRefreshRequest struct {
	Channel string `json:"channel,omitempty"`
	Token   string `json:"token,omitempty"`
}

// Errors of decoding; test with errors.Is.
var (
	ErrMalformed = errors.New("malformed command")
	ErrTooLarge  = errors.New("command too large")
	ErrEmpty     = errors.New("no command")
)

// DecodeCommands decodes newline-separated JSON commands (cf_connect, or
// the data of an emulation envelope), each at most max bytes (0: no
// limit). Blank lines are skipped. Embedded payloads are compacted.
func DecodeCommands(b []byte, max int) ([]Command, error) {
	var cmds []Command
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if max > 0 && len(line) > max {
			return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(line), max)
		}
		var c Command
		if err := decodeObject(line, &c); err != nil {
			return nil, err
		}
		if err := c.compact(); err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
	if len(cmds) == 0 {
		return nil, ErrEmpty
	}
	return cmds, nil
}

// DecodeConnectRequest decodes the cf_connect of the unidirectional
// transport: a bare ConnectRequest; empty input and null are an empty
// request.
func DecodeConnectRequest(b []byte) (*ConnectRequest, error) {
	b = bytes.TrimSpace(b)
	req := new(ConnectRequest)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return req, nil
	}
	if err := decodeObject(b, req); err != nil {
		return nil, err
	}
	var err error
	if req.Data, err = compactRaw(req.Data); err != nil {
		return nil, err
	}
	return req, nil
}

// decodeObject decodes one JSON object into v, refusing anything after it
// and any other JSON value.
func decodeObject(b []byte, v any) error {
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	// Unmarshal refuses anything after the object too.
	if err := gojson.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// compact compacts the command's embedded payloads.
func (c *Command) compact() error {
	var err error
	set := func(r *Raw) {
		if err == nil {
			*r, err = compactRaw(*r)
		}
	}
	if c.Connect != nil {
		set(&c.Connect.Data)
	}
	if c.Subscribe != nil {
		set(&c.Subscribe.Data)
	}
	if c.Publish != nil {
		set(&c.Publish.Data)
	}
	if c.Send != nil {
		set(&c.Send.Data)
	}
	if c.RPC != nil {
		set(&c.RPC.Data)
	}
	return err
}

// compactRaw removes insignificant whitespace (newlines included) from r.
func compactRaw(r Raw) (Raw, error) {
	if len(r) == 0 || bytes.Equal(r, []byte("null")) {
		return nil, nil
	}
	if bytes.IndexAny(r, " \t\r\n") < 0 {
		return r, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return buf.Bytes(), nil
}

// Envelope is the body of a POST to /emulation: the commands in Data are
// for the connection Session, held by Node.
type Envelope struct {
	Session string
	Node    string
	Data    []byte // newline-separated JSON commands
}

// DecodeEnvelope decodes a JSON emulation envelope. Data must be a JSON
// string (centrifuge-js sends the commands as one).
func DecodeEnvelope(b []byte) (Envelope, error) {
	var raw struct {
		Session string `json:"session"`
		Node    string `json:"node"`
		Data    Raw    `json:"data"`
	}
	if err := decodeObject(bytes.TrimSpace(b), &raw); err != nil {
		return Envelope{}, err
	}
	env := Envelope{Session: raw.Session, Node: raw.Node}
	if len(raw.Data) > 0 && !bytes.Equal(raw.Data, []byte("null")) {
		var s string
		if err := json.Unmarshal(raw.Data, &s); err != nil {
			return Envelope{}, fmt.Errorf("%w: data is not a JSON string", ErrMalformed)
		}
		env.Data = []byte(s)
	}
	return env, nil
}
