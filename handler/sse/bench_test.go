package sse_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler/sse"
)

// benchSizes are the payload sizes of BenchmarkEncode. The bench module
// (../../bench) runs the same sizes against other libraries.
var benchSizes = []struct {
	name string
	size int
}{
	{"64B", 64},
	{"1KiB", 1 << 10},
	{"16KiB", 16 << 10},
}

// benchPayloadSHA256 pins the payloads. bench/payload.go in the bench module
// builds them with the same algorithm and checks the same digests, so the
// numbers in BENCHMARKS.md compare identical work.
var benchPayloadSHA256 = map[int]string{
	64:       "ae74bfce48853efbe06fbbcc107a3bf1a26fc6a55940e3021bd82228eea0f8a2",
	1 << 10:  "76d7ec9d868965f9600b4a1ccc8a0ea1ca5a737ca0620524c6796314edb03143",
	16 << 10: "ed257e1b54f255f10b23c95990500213c6f5a2629c916d590f4a7fa86ab41644",
}

// benchPayload returns a size-byte multi-line text payload: lines of 60
// characters (each starting with a non-space, containing spaces and colons)
// separated by "\n", with every fourth separator "\r\n". The payload never
// ends in a line terminator.
func benchPayload(size int) string {
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

func TestBenchPayload(t *testing.T) {
	t.Parallel()
	for _, bs := range benchSizes {
		p := benchPayload(bs.size)
		if len(p) != bs.size {
			t.Errorf("%s: len = %d", bs.name, len(p))
		}
		if !strings.Contains(p, "\r\n") && bs.size > 64 {
			t.Errorf("%s: no CRLF", bs.name)
		}
		sum := sha256.Sum256([]byte(p))
		if got := hex.EncodeToString(sum[:]); got != benchPayloadSHA256[bs.size] {
			t.Errorf("%s: sha256 = %s, want %s", bs.name, got, benchPayloadSHA256[bs.size])
		}
	}
}

// BenchmarkEncode measures Append of a whole event (id, type, multi-line
// data) into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			ev := sse.Event{ID: "13435", Type: "message", Data: benchPayload(bs.size)}
			var buf []byte
			var err error
			b.ReportAllocs()
			b.SetBytes(int64(len(ev.Data)))
			for b.Loop() {
				buf, err = sse.Append(buf[:0], ev)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeData measures AppendData alone.
func BenchmarkEncodeData(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			data := benchPayload(bs.size)
			var buf []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				buf = sse.AppendData(buf[:0], data)
			}
		})
	}
}
