package centrifugo

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
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
