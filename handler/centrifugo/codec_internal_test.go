package centrifugo

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/ssebridge/ssebridge/handler/engine"
)

// TestAppendData: every payload becomes one line of JSON: JSON as it is
// (compacted), anything else a JSON string that decodes to the text
// (invalid UTF-8 as U+FFFD).
func TestAppendData(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{"{\n  \"a\": [1,\r\n 2]\n}", `{"a":[1,2]}`},
		{`"s"`, `"s"`},
		{`12`, `12`},
		{`null`, `null`},
		{``, `""`},
		{`plain`, `"plain"`},
		{`{"a":`, `"{\"a\":"`},
		{"line\nbreak", `"line\nbreak"`},
		{"tab\tquote\"back\\", `"tab\tquote\"back\\"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"bad \xff utf8", `"bad \ufffd utf8"`},
		{"é✓", `"é✓"`},
		{"trailing ", `"trailing "`},
		{"123abc", `"123abc"`},
	} {
		got := string(appendData(nil, []byte(tc.in)))
		if got != tc.want {
			t.Errorf("appendData(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzAppendData(f *testing.F) {
	for _, s := range []string{`{"a":1}`, "x\ny", "\xff", "\u2028", `[1, 2 ]`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := appendData(nil, in)
		if !json.Valid(out) {
			t.Fatalf("appendData(%q) = %q: not JSON", in, out)
		}
		for _, c := range out {
			if c == '\n' || c == '\r' {
				t.Fatalf("appendData(%q) = %q: line break", in, out)
			}
		}
		if !json.Valid(in) && utf8.Valid(in) {
			var s string
			if json.Unmarshal(out, &s) != nil || s != string(in) {
				t.Fatalf("appendData(%q) = %q: does not decode to the text", in, out)
			}
		}
	})
}

// TestDisconnectReasons: every disconnect code of the reference has
// Centrifugo's reason, and engine close codes map onto them.
func TestDisconnectReasons(t *testing.T) {
	for code, want := range map[uint32]string{
		3000: "connection closed", 3001: "shutdown", 3004: "internal server error", 3005: "expired",
		3006: "subscription expired", 3008: "slow", 3009: "write error", 3010: "insufficient state",
		3011: "force reconnect", 3012: "no pong", 3013: "too many requests", 3014: "state invalidated",
		3500: "invalid token", 3501: "bad request", 3502: "stale", 3503: "force disconnect",
		3504: "connection limit", 3505: "channel limit", 3506: "inappropriate protocol",
		3507: "permission denied", 3508: "not available", 3509: "too many errors",
	} {
		if got := defaultReason(code); got != want {
			t.Errorf("reason of %d: %q, want %q", code, got, want)
		}
	}
	for _, tc := range []struct {
		in     engine.CloseDetails
		code   uint32
		reason string
	}{
		{engine.CloseDetails{Code: engine.CloseGoingAway}, 3001, "shutdown"},
		{engine.CloseDetails{Code: engine.CloseNormal}, 3000, "connection closed"},
		{engine.CloseDetails{Code: engine.CloseSlowConsumer, Reason: "slow consumer: more than 10 bytes"}, 3008, "slow consumer: more than 10 bytes"},
		{engine.CloseDetails{Code: 4123}, 4123, ""},
		{engine.CloseDetails{Code: 3503}, 3503, "force disconnect"},
		{engine.CloseDetails{Code: engine.CloseInternalError}, 3004, "internal server error"},
		{engine.CloseDetails{Code: 7}, 3004, "internal server error"},
	} {
		code, reason := disconnectOf(tc.in)
		if code != tc.code || reason != tc.reason {
			t.Errorf("disconnectOf(%+v) = %d %q, want %d %q", tc.in, code, reason, tc.code, tc.reason)
		}
	}
	// No push for 3000; one line of JSON otherwise.
	if b := bidiCodec.AppendClose(nil, nil, engine.CloseDetails{Code: 3000}); len(b) != 0 {
		t.Errorf("close frame for 3000: %q", b)
	}
	if b := string(uniCodec.AppendClose(nil, nil, engine.CloseDetails{Code: 4001, Reason: "a\nb\"c"})); b != `data: {"disconnect":{"code":4001,"reason":"a\nb\"c"}}`+"\n\n" {
		t.Errorf("uni close frame %q", b)
	}
}
