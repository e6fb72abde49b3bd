package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

// Every library encodes the same events: this id, this type and one of
// these payloads, all built by payload below.
const (
	eventID   = "13435"
	eventType = "message"
)

// sizes are the payload sizes, as in handler/sse's BenchmarkEncode.
var sizes = []struct {
	name string
	size int
}{
	{"64B", 64},
	{"1KiB", 1 << 10},
	{"16KiB", 16 << 10},
}

// payloadSHA256 pins the payloads. handler/sse/bench_test.go builds its
// payloads with the same algorithm and checks the same digests, so numbers
// from both modules compare identical work.
var payloadSHA256 = map[int]string{
	64:       "ae74bfce48853efbe06fbbcc107a3bf1a26fc6a55940e3021bd82228eea0f8a2",
	1 << 10:  "76d7ec9d868965f9600b4a1ccc8a0ea1ca5a737ca0620524c6796314edb03143",
	16 << 10: "ed257e1b54f255f10b23c95990500213c6f5a2629c916d590f4a7fa86ab41644",
}

// payload returns a size-byte multi-line text payload: lines of 60
// characters (each starting with a non-space, containing spaces and colons)
// separated by "\n", with every fourth separator "\r\n". The payload never
// ends in a line terminator. It is the one source of benchmark data in this
// module.
func payload(size int) string {
	const filler = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789,"
	const lineLen = 60
	var b strings.Builder
	b.Grow(size + lineLen + 2)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			if i%4 == 1 {
				b.WriteString("\r\n")
			} else {
				b.WriteByte('\n')
			}
		}
		line := "L" + strconv.Itoa(i) + " "
		b.WriteString(line)
		for j := len(line); j < lineLen; j++ {
			b.WriteByte(filler[(i*7+j)%len(filler)])
		}
	}
	p := []byte(b.String()[:size])
	if c := p[size-1]; c == '\r' || c == '\n' {
		p[size-1] = '.'
	}
	return string(p)
}

func TestPayload(t *testing.T) {
	t.Parallel()
	for _, s := range sizes {
		p := payload(s.size)
		if len(p) != s.size {
			t.Errorf("%s: len = %d", s.name, len(p))
		}
		if !strings.Contains(p, "\r\n") || !strings.Contains(p, ":") {
			t.Errorf("%s: payload lacks CRLF or colon", s.name)
		}
		sum := sha256.Sum256([]byte(p))
		if got := hex.EncodeToString(sum[:]); got != payloadSHA256[s.size] {
			t.Errorf("%s: sha256 = %s, want %s", s.name, got, payloadSHA256[s.size])
		}
	}
}
