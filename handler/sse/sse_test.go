package sse_test

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler/sse"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// normalize is what a client receives for data sent with AppendData: the
// same text with CRLF and CR turned into LF.
func normalize(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// dataCases are payloads with the exact bytes AppendData must write.
var dataCases = []struct {
	name, data, want string
}{
	{"empty", "", "data: \n"},
	{"one line", "hello", "data: hello\n"},
	{"LF", "a\nb", "data: a\ndata: b\n"},
	{"CR", "a\rb", "data: a\ndata: b\n"},
	{"CRLF", "a\r\nb", "data: a\ndata: b\n"},
	{"LF CR is two breaks", "a\n\rb", "data: a\ndata: \ndata: b\n"},
	{"CR CR", "a\r\rb", "data: a\ndata: \ndata: b\n"},
	{"CRLF LF", "a\r\n\nb", "data: a\ndata: \ndata: b\n"},
	{"CR CRLF", "a\r\r\nb", "data: a\ndata: \ndata: b\n"},
	{"mixed", "1\n2\r3\r\n4\n\r\n5", "data: 1\ndata: 2\ndata: 3\ndata: 4\ndata: \ndata: 5\n"},
	{"leading LF", "\na", "data: \ndata: a\n"},
	{"leading CRLF", "\r\na", "data: \ndata: a\n"},
	{"trailing LF", "a\n", "data: a\ndata: \n"},
	{"trailing CR", "a\r", "data: a\ndata: \n"},
	{"trailing CRLF", "a\r\n", "data: a\ndata: \n"},
	{"only LF", "\n", "data: \ndata: \n"},
	{"only CR", "\r", "data: \ndata: \n"},
	{"only CRLF", "\r\n", "data: \ndata: \n"},
	{"two LF", "\n\n", "data: \ndata: \ndata: \n"},
	{"leading space", " x", "data:  x\n"},
	{"leading spaces on lines", " a\n  b", "data:  a\ndata:   b\n"},
	{"colons", "a:b: c\n:d", "data: a:b: c\ndata: :d\n"},
	{"looks like fields", "id: 7\nevent: x\n\nretry: 1", "data: id: 7\ndata: event: x\ndata: \ndata: retry: 1\n"},
	{"unicode", "héllo\n世界 🎉", "data: héllo\ndata: 世界 🎉\n"},
	{"NUL", "a\x00b\n\x00", "data: a\x00b\ndata: \x00\n"},
	{"tab and trailing space", "\ta \n", "data: \ta \ndata: \n"},
	{"long line", strings.Repeat("x", 1000), "data: " + strings.Repeat("x", 1000) + "\n"},
}

func TestAppendData(t *testing.T) {
	t.Parallel()
	for _, tc := range dataCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := string(sse.AppendData(nil, tc.data)); got != tc.want {
				t.Errorf("AppendData(%q) = %q, want %q", tc.data, got, tc.want)
			}
			if got := string(sse.AppendDataBytes(nil, []byte(tc.data))); got != tc.want {
				t.Errorf("AppendDataBytes(%q) = %q, want %q", tc.data, got, tc.want)
			}
			// Appending keeps what dst held.
			if got := string(sse.AppendData([]byte("x"), tc.data)); got != "x"+tc.want {
				t.Errorf("AppendData after x = %q, want %q", got, "x"+tc.want)
			}

			// A client receives exactly the data, with CR/CRLF as LF.
			stream := string(sse.AppendEnd(sse.AppendData(nil, tc.data)))
			res := parseStream(stream)
			want := []clientEvent{{Type: "message", Data: normalize(tc.data)}}
			if !slices.Equal(res.Events, want) {
				t.Errorf("client got %q, want %q (stream %q)", res.Events, want, stream)
			}
			for _, f := range res.Fields {
				if f != "data" {
					t.Errorf("stream %q has a %q field", stream, f)
				}
			}
		})
	}
}

func TestAppendComment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, want string
		comments         []string // as the client sees them, after ':'
	}{
		{"empty", "", ":\n", []string{""}},
		{"keep-alive", "ping", ": ping\n", []string{" ping"}},
		{"LF", "a\nb", ": a\n: b\n", []string{" a", " b"}},
		{"CR", "a\rb", ": a\n: b\n", []string{" a", " b"}},
		{"CRLF", "a\r\nb", ": a\n: b\n", []string{" a", " b"}},
		{"trailing LF", "a\n", ": a\n:\n", []string{" a", ""}},
		{"blank lines", "\r\n\n", ":\n:\n:\n", []string{"", "", ""}},
		{"leading space", " x", ":  x\n", []string{"  x"}},
		{"looks like fields", "x\ndata: y\n\nid: 1", ": x\n: data: y\n:\n: id: 1\n", []string{" x", " data: y", "", " id: 1"}},
		{"NUL and unicode", "\x00 é", ": \x00 é\n", []string{" \x00 é"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := string(sse.AppendComment(nil, tc.text))
			if got != tc.want {
				t.Errorf("AppendComment(%q) = %q, want %q", tc.text, got, tc.want)
			}
			res := parseStream(got)
			if len(res.Events) != 0 || len(res.Fields) != 0 || res.Pending || res.Trailing != "" {
				t.Errorf("comment %q is not inert: %+v", got, res)
			}
			if !slices.Equal(res.Comments, tc.comments) {
				t.Errorf("comments = %q, want %q", res.Comments, tc.comments)
			}
		})
	}
}

// invalidValues are ids and types that must be refused, with the wrapped
// error's detail.
var invalidValues = []struct {
	value, detail string
}{
	{"a\nb", "LF at byte 1"},
	{"a\rb", "CR at byte 1"},
	{"a\r\nb", "CR at byte 1"},
	{"a\x00b", "NUL at byte 1"},
	{"\n", "LF at byte 0"},
	{"ab\r", "CR at byte 2"},
	{"1\n\ndata: x", "LF at byte 1"},
	{"é\x00", "NUL at byte 2"},
}

// withSentinel returns an empty-prefixed dst whose spare capacity is filled
// with a sentinel byte, to detect functions that write past len on error.
func withSentinel(prefix string) []byte {
	b := make([]byte, len(prefix), len(prefix)+64)
	copy(b, prefix)
	for i := len(prefix); i < cap(b); i++ {
		b[:cap(b)][i] = '#'
	}
	return b
}

// checkUnchanged fails unless got is dst as it was: same length, contents,
// backing array and untouched spare capacity.
func checkUnchanged(t *testing.T, dst, got []byte, prefix string) {
	t.Helper()
	if string(got) != prefix || len(got) != len(dst) || cap(got) != cap(dst) || (cap(got) > 0 && &got[:1][0] != &dst[:1][0]) {
		t.Errorf("dst changed: %q (len %d cap %d)", got, len(got), cap(got))
	}
	spare := dst[len(dst):cap(dst)]
	if strings.Trim(string(spare), "#") != "" {
		t.Errorf("spare capacity written: %q", spare)
	}
}

func TestCheckAndAppendID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "0", "13435", "a b:c", " lead", "é🎉", "\t", strings.Repeat("9", 300)} {
		if err := sse.CheckID(id); err != nil {
			t.Errorf("CheckID(%q) = %v", id, err)
		}
		got, err := sse.AppendID([]byte("x"), id)
		if err != nil || string(got) != "xid: "+id+"\n" {
			t.Errorf("AppendID(%q) = %q, %v", id, got, err)
		}
		res := parseStream(string(got[1:]) + "data: d\n\n")
		if len(res.Events) != 1 || res.Events[0].LastEventID != id {
			t.Errorf("id %q: client got %+v", id, res.Events)
		}
	}
	for _, tc := range invalidValues {
		err := sse.CheckID(tc.value)
		if !errors.Is(err, sse.ErrInvalidID) || !strings.HasSuffix(err.Error(), tc.detail) {
			t.Errorf("CheckID(%q) = %v, want ErrInvalidID: ...%s", tc.value, err, tc.detail)
		}
		dst := withSentinel("keep")
		got, err := sse.AppendID(dst, tc.value)
		if !errors.Is(err, sse.ErrInvalidID) {
			t.Errorf("AppendID(%q) error = %v", tc.value, err)
		}
		checkUnchanged(t, dst, got, "keep")
	}
}

func TestCheckAndAppendType(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"message", "x", "user.joined", "a b:c", " lead", "é🎉"} {
		if err := sse.CheckType(name); err != nil {
			t.Errorf("CheckType(%q) = %v", name, err)
		}
		got, err := sse.AppendType([]byte("x"), name)
		if err != nil || string(got) != "xevent: "+name+"\n" {
			t.Errorf("AppendType(%q) = %q, %v", name, got, err)
		}
		res := parseStream(string(got[1:]) + "data: d\n\n")
		if len(res.Events) != 1 || res.Events[0].Type != name {
			t.Errorf("type %q: client got %+v", name, res.Events)
		}
	}
	cases := append([]struct{ value, detail string }{{"", "empty"}}, invalidValues...)
	for _, tc := range cases {
		err := sse.CheckType(tc.value)
		if !errors.Is(err, sse.ErrInvalidType) || !strings.HasSuffix(err.Error(), tc.detail) {
			t.Errorf("CheckType(%q) = %v, want ErrInvalidType: ...%s", tc.value, err, tc.detail)
		}
		dst := withSentinel("keep")
		got, err := sse.AppendType(dst, tc.value)
		if !errors.Is(err, sse.ErrInvalidType) {
			t.Errorf("AppendType(%q) error = %v", tc.value, err)
		}
		checkUnchanged(t, dst, got, "keep")
	}
}

func TestAppendRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "retry: 0\n"},
		{-time.Second, "retry: 0\n"},
		{math.MinInt64, "retry: 0\n"},
		{time.Millisecond, "retry: 1\n"},
		{999 * time.Microsecond, "retry: 0\n"},
		{1500 * time.Millisecond, "retry: 1500\n"},
		{1500*time.Millisecond + 999*time.Microsecond, "retry: 1500\n"},
		{3 * time.Second, "retry: 3000\n"},
		{time.Hour, "retry: 3600000\n"},
		{math.MaxInt64, "retry: 9223372036854\n"},
	}
	for _, tc := range tests {
		got := string(sse.AppendRetry([]byte("x"), tc.d))
		if got != "x"+tc.want {
			t.Errorf("AppendRetry(%v) = %q, want %q", tc.d, got, "x"+tc.want)
		}
		res := parseStream(got[1:])
		if want := strings.TrimSuffix(strings.TrimPrefix(tc.want, "retry: "), "\n"); !slices.Equal(res.Retries, []string{want}) {
			t.Errorf("AppendRetry(%v): client retries %q", tc.d, res.Retries)
		}
	}
}

func TestAppendEnd(t *testing.T) {
	t.Parallel()
	if got := string(sse.AppendEnd([]byte("data: x\n"))); got != "data: x\n\n" {
		t.Errorf("AppendEnd = %q", got)
	}
}

func TestAppend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ev      sse.Event
		want    string
		client  clientEvent
		retries []string
	}{
		{"data only", sse.Event{Data: "x"}, "data: x\n\n", clientEvent{Type: "message", Data: "x"}, nil},
		{"empty", sse.Event{}, "data: \n\n", clientEvent{Type: "message"}, nil},
		{
			"all fields",
			sse.Event{ID: "13435", Type: "update", Retry: 3 * time.Second, Data: "a\r\nb"},
			"id: 13435\nevent: update\nretry: 3000\ndata: a\ndata: b\n\n",
			clientEvent{Type: "update", Data: "a\nb", LastEventID: "13435"},
			[]string{"3000"},
		},
		{"zero retry omitted", sse.Event{ID: "1", Retry: 0, Data: "d"}, "id: 1\ndata: d\n\n", clientEvent{Type: "message", Data: "d", LastEventID: "1"}, nil},
		{"negative retry omitted", sse.Event{Retry: -time.Second, Data: "d"}, "data: d\n\n", clientEvent{Type: "message", Data: "d"}, nil},
		{"sub-millisecond retry", sse.Event{Retry: time.Microsecond, Data: "d"}, "retry: 0\ndata: d\n\n", clientEvent{Type: "message", Data: "d"}, []string{"0"}},
		{"trailing newline kept", sse.Event{Type: "t", Data: "line\n"}, "event: t\ndata: line\ndata: \n\n", clientEvent{Type: "t", Data: "line\n"}, nil},
		{"NUL in data", sse.Event{Data: "\x00"}, "data: \x00\n\n", clientEvent{Type: "message", Data: "\x00"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := sse.Append([]byte("prev"), tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prev"+tc.want {
				t.Errorf("Append(%+v) = %q, want %q", tc.ev, got, "prev"+tc.want)
			}
			res := parseStream(string(got[len("prev"):]))
			if !slices.Equal(res.Events, []clientEvent{tc.client}) || !slices.Equal(res.Retries, tc.retries) || res.Pending || res.Trailing != "" {
				t.Errorf("client got %+v, want event %+v retries %q", res, tc.client, tc.retries)
			}
		})
	}
}

func TestAppendInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range invalidValues {
		for _, ev := range []sse.Event{
			{ID: tc.value, Type: "t", Data: "d"},
			{ID: tc.value, Type: "bad\n", Data: "d"}, // the id is checked first
		} {
			dst := withSentinel("keep")
			got, err := sse.Append(dst, ev)
			if !errors.Is(err, sse.ErrInvalidID) {
				t.Errorf("Append(%+v) error = %v, want ErrInvalidID", ev, err)
			}
			checkUnchanged(t, dst, got, "keep")
		}
		ev := sse.Event{ID: "1", Type: tc.value, Retry: time.Second, Data: strings.Repeat("d\n", 100)}
		for _, dst := range [][]byte{withSentinel("keep"), []byte("keep")} { // with room, and without
			got, err := sse.Append(dst, ev)
			if !errors.Is(err, sse.ErrInvalidType) {
				t.Errorf("Append(%+v) error = %v, want ErrInvalidType", ev, err)
			}
			checkUnchanged(t, dst, got, "keep")
		}
	}
}

// TestAppendStream writes many events into one buffer and checks that a
// client sees each of them, in order, with the last event id tracked.
func TestAppendStream(t *testing.T) {
	t.Parallel()
	var (
		buf  []byte
		want []clientEvent
		err  error
	)
	lastID := ""
	for i, tc := range dataCases {
		ev := sse.Event{Data: tc.data}
		if i%2 == 0 {
			ev.ID = strings.Repeat("i", i)
			lastID = ev.ID
		}
		if i%3 == 0 {
			ev.Type = "t" + tc.name
		}
		buf = sse.AppendComment(buf, "between\n"+tc.data)
		if buf, err = sse.Append(buf, ev); err != nil {
			t.Fatal(err)
		}
		typ := ev.Type
		if typ == "" {
			typ = "message"
		}
		want = append(want, clientEvent{Type: typ, Data: normalize(tc.data), LastEventID: lastID})
	}
	res := parseStream(string(buf))
	if !slices.Equal(res.Events, want) {
		t.Errorf("client got %d events %q\nwant %d %q", len(res.Events), res.Events, len(want), want)
	}
}

// TestLargeAndPathological checks big inputs, including CR-only text whose
// line ends a naive "search LF, then CR" encoder would rescan quadratically.
func TestLargeAndPathological(t *testing.T) {
	t.Parallel()
	inputs := map[string]string{
		"CR only":     strings.Repeat("abc\r", 50000),
		"LF only":     strings.Repeat("abc\n", 50000),
		"CRLF only":   strings.Repeat("abc\r\n", 50000),
		"terminators": strings.Repeat("\r\n\r\r\n\n", 20000),
		"one LF late": strings.Repeat("a\r", 50000) + "\n" + strings.Repeat("b", 1000),
		"no breaks":   strings.Repeat("z", 1<<20),
	}
	for name, data := range inputs {
		got, err := sse.Append(nil, sse.Event{ID: "1", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		res := parseStream(string(got))
		if len(res.Events) != 1 || res.Events[0].Data != normalize(data) {
			t.Errorf("%s: client did not get the data back", name)
		}
		lines := bytes.Count(got, []byte("\n"))
		if want := strings.Count(normalize(data), "\n") + 1 + 2; lines != want {
			t.Errorf("%s: %d lines, want %d", name, lines, want)
		}
	}
}

// TestAllocs checks that nothing allocates when dst has room, and that a
// dst without room grows exactly once, however many lines are written. It
// does not run in parallel: AllocsPerRun counts every goroutine's
// allocations.
func TestAllocs(t *testing.T) {
	ev := sse.Event{ID: "13435", Type: "message", Retry: time.Second, Data: ssetest.BenchPayload(16 << 10)}
	multi := strings.Repeat("line\r\n", 1000)
	buf := make([]byte, 0, 64<<10)
	var err error
	zero := map[string]func(){
		"Append": func() {
			if buf, err = sse.Append(buf[:0], ev); err != nil {
				t.Fatal(err)
			}
		},
		"AppendData":      func() { buf = sse.AppendData(buf[:0], ev.Data) },
		"AppendDataBytes": func() { buf = sse.AppendDataBytes(buf[:0], []byte("a\nb\r\nc")) },
		"AppendComment":   func() { buf = sse.AppendComment(buf[:0], multi) },
		"AppendID":        func() { buf, _ = sse.AppendID(buf[:0], "13435") },
		"AppendType":      func() { buf, _ = sse.AppendType(buf[:0], "message") },
		"AppendRetry":     func() { buf = sse.AppendRetry(buf[:0], time.Hour) },
		"AppendEnd":       func() { buf = sse.AppendEnd(buf[:0]) },
		"CheckID":         func() { _ = sse.CheckID("13435") },
	}
	for name, f := range zero {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s into a buffer with room: %v allocs, want 0", name, n)
		}
	}

	// Growing once costs what one slices.Grow costs in this build (the race
	// detector adds an allocation to it).
	grow := testing.AllocsPerRun(100, func() { buf = slices.Grow([]byte(nil), len(ev.Data)) })
	if grow < 1 {
		t.Fatalf("slices.Grow made %v allocations", grow)
	}
	once := map[string]func(){
		"Append nil":          func() { buf, _ = sse.Append(nil, ev) },
		"AppendData nil":      func() { buf = sse.AppendData(nil, multi) },
		"AppendComment nil":   func() { buf = sse.AppendComment(nil, multi) },
		"Append almost room":  func() { buf, _ = sse.Append(make([]byte, 0, len(ev.Data)+64), ev) },
		"AppendData one line": func() { buf = sse.AppendData(nil, ev.Data[:60]) },
	}
	for name, f := range once {
		want := grow
		if strings.HasSuffix(name, "almost room") {
			want++ // the starting buffer
		}
		if n := testing.AllocsPerRun(100, f); n != want {
			t.Errorf("%s: %v allocs, want %v", name, n, want)
		}
	}
}
