package crossws

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/ssebridge/ssebridge/handler/engine"
)

func TestParseEventID(t *testing.T) {
	id := "AAAAAAAAAAAAAAAAAAAAAA"
	cases := []struct {
		in     string
		seq    uint64
		closed bool
		ok     bool
		mark   uint64
	}{
		{id + ".0", 0, false, true, 0},
		{id + ".3.7", 3, false, true, 7},
		{id + ".0.18446744073709551615", 0, false, true, 1<<64 - 1},
		{id + ".3.0", 0, false, false, 0},
		{id + ".3.07", 0, false, false, 0},
		{id + ".3.7.", 0, false, false, 0},
		{id + ".3.7.1", 0, false, false, 0},
		{id + ".3.", 0, false, false, 0},
		{id + ".closed.1", 0, false, false, 0},
		{id + ".1", 1, false, true, 0},
		{id + ".18446744073709551615", 0, false, false, 0}, // never written
		{id + ".9223372036854775808", 0, false, false, 0},  // 2^63
		{id + ".9223372036854775807", 1<<63 - 1, false, true, 0},
		{id + ".closed", 0, true, true, 0},
		{id + ".18446744073709551616", 0, false, false, 0},
		{id + ".00", 0, false, false, 0},
		{id + ".01", 0, false, false, 0},
		{id + ".-1", 0, false, false, 0},
		{id + ".+1", 0, false, false, 0},
		{id + ".", 0, false, false, 0},
		{id, 0, false, false, 0},
		{id + ".1.", 0, false, false, 0},
		{id + ".Closed", 0, false, false, 0},
		{id[:21] + "B.1", 0, false, false, 0},
		{"", 0, false, false, 0},
		{".1", 0, false, false, 0},
	}
	for _, c := range cases {
		gotID, cur, closed, ok := parseEventID(c.in)
		if ok != c.ok || cur.Seq != c.seq || cur.Mark != c.mark || closed != c.closed || (ok && gotID != id) {
			t.Errorf("parseEventID(%q) = %q %+v %v %v, want %d.%d %v %v", c.in, gotID, cur, closed, ok, c.seq, c.mark, c.closed, c.ok)
		}
	}
}

func FuzzParseEventID(f *testing.F) {
	id := engine.NewID()
	for _, s := range []string{
		id + ".0", id + ".1", id + ".closed", id + ".9223372036854775807",
		id + ".18446744073709551616", id + ".00", id + ".-1", id + ".", "", ".", "x.1",
	} {
		f.Add(s, []byte(id), uint64(7), uint64(0))
	}
	f.Add(id+".3.9", []byte(id), uint64(3), uint64(9))
	f.Fuzz(func(t *testing.T, s string, raw []byte, seq, mark uint64) {
		// Whatever s is: no panic, and ok only for what appendEventID
		// (or the close event) writes.
		gotID, got, closed, ok := parseEventID(s)
		if ok {
			if !engine.ValidID(gotID) {
				t.Fatalf("parseEventID(%q) accepted the id %q", s, gotID)
			}
			var want string
			if closed {
				want = gotID + "." + closedMarker
			} else {
				want = string(appendEventID(nil, gotID, got.Seq, got.Mark))
			}
			if s != want {
				t.Fatalf("parseEventID(%q) = %q %+v closed=%v: appendEventID writes %q", s, gotID, got, closed, want)
			}
		} else if gotID != "" || got.Seq != 0 || got.Mark != 0 || closed {
			t.Fatalf("parseEventID(%q) failed but returned %q %+v %v", s, gotID, got, closed)
		}

		// Round trip from a valid id and any seq.
		var b [16]byte
		copy(b[:], raw)
		pid := base64.RawURLEncoding.EncodeToString(b[:])
		seq = min(seq, maxSeq-1) // larger seqs are refused
		text := string(appendEventID([]byte("junk"), pid, seq, mark))[len("junk"):]
		want := pid + "." + strconv.FormatUint(seq, 10)
		if mark != 0 {
			want += "." + strconv.FormatUint(mark, 10)
		}
		if text != want {
			t.Fatalf("appendEventID(%q, %d, %d) = %q, want %q", pid, seq, mark, text, want)
		}
		rid, rcur, rclosed, rok := parseEventID(text)
		if !rok || rclosed || rid != pid || rcur.Seq != seq || rcur.Mark != mark {
			t.Fatalf("parseEventID(%q) = %q %+v %v %v, want %q %d.%d", text, rid, rcur, rclosed, rok, pid, seq, mark)
		}
		if cid, _, cclosed, cok := parseEventID(pid + ".closed"); !cok || !cclosed || cid != pid {
			t.Fatalf("close id of %q not recognised", pid)
		}
	})
}

func TestCompleteUTF8(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"é", 2},
		{"a\xC3", 1},
		{"a\xE2\x82", 1},
		{"a\xE2", 1},
		{"€", 3},
		{"a\xF0\x9F\x98", 1},
		{"a\xF0\x9F", 1},
		{"a\xF0", 1},
		{"😀", 4},
		{"\x80\x80\x80\x80", 4}, // stray continuation bytes: nothing to wait for
		{"a\xFF", 2},            // never valid
		{"a\xF8\x80", 3},
		{"\xF0\x9F\x98\x80\xF0\x9F\x98", 4},
	}
	for _, c := range cases {
		if got := completeUTF8([]byte(c.in)); got != c.want {
			t.Errorf("completeUTF8(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// checkCut checks the contract of completeUTF8 on b.
func checkCut(t *testing.T, b []byte) int {
	t.Helper()
	n := len(b)
	cut := completeUTF8(b)
	if cut < 0 || cut > n || n-cut > utf8.UTFMax-1 {
		t.Fatalf("completeUTF8(%q) = %d: holds back more than %d bytes", b, cut, utf8.UTFMax-1)
	}
	// The cut is not inside a complete, valid character of b.
	for i := 0; i < n; {
		r, size := utf8.DecodeRune(b[i:])
		if !(r == utf8.RuneError && size == 1) && i < cut && cut < i+size {
			t.Fatalf("completeUTF8(%q) = %d cuts %q in two", b, cut, b[i:i+size])
		}
		i += size
	}
	// An incomplete character at the end is held back whole.
	for s := max(0, n-(utf8.UTFMax-1)); s < n; s++ {
		if !utf8.FullRune(b[s:]) && cut > s {
			t.Fatalf("completeUTF8(%q) = %d keeps the start of an incomplete character at %d", b, cut, s)
		}
	}
	return cut
}

func FuzzCompleteUTF8(f *testing.F) {
	for _, s := range []string{"", "abc", "a\xF0\x9F\x98", "€€€", "\xC3", "\xE0\x80", "\xED\xA0", "\xF4\x90\x80", "\xFF\xFE", "😀😀"} {
		f.Add([]byte(s), []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, b []byte, splits []byte) {
		checkCut(t, b)

		// Cut b into reads at the given sizes, as serveStreamedUpload does:
		// each read appends to the bytes held back, the complete prefix is
		// one message, and the end of the body flushes what is left.
		var out [][]byte
		var held []byte
		rest := b
		for i := 0; len(rest) > 0; i++ {
			k := len(rest)
			if i < len(splits) {
				k = min(k, int(splits[i])+1)
			}
			buf := append(held, rest[:k]...)
			rest = rest[k:]
			cut := checkCut(t, buf)
			if cut > 0 {
				out = append(out, buf[:cut])
			}
			held = append([]byte(nil), buf[cut:]...)
		}
		if len(held) > 0 {
			out = append(out, held)
		}
		if got := bytes.Join(out, nil); !bytes.Equal(got, b) {
			t.Fatalf("pieces %q do not add up to %q", out, b)
		}
		if utf8.Valid(b) {
			for _, m := range out {
				if !utf8.Valid(m) {
					t.Fatalf("valid input %q gave the invalid piece %q", b, m)
				}
			}
		}
	})
}

// completeUTF8's doc: "Bytes that can never start or continue a valid
// sequence do not hold anything back."
func TestCompleteUTF8NeverValidLeads(t *testing.T) {
	for _, c := range []byte{0xC0, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xFF} {
		in := []byte{'a', c}
		if got := completeUTF8(in); got != 2 {
			t.Errorf("completeUTF8(%q) = %d, want 2: 0x%X never starts a valid sequence", in, got, c)
		}
	}
	for _, in := range []string{"a\xE0\x80", "a\xED\xA0", "a\xF0\x8F", "a\xF4\x90", "a\xF4\x90\x80"} {
		if got := completeUTF8([]byte(in)); got != len(in) {
			t.Errorf("completeUTF8(%q) = %d, want %d: no valid sequence starts so", in, got, len(in))
		}
	}
}
