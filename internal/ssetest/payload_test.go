package ssetest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// The payloads are pinned: BENCHMARKS.md quotes figures measured on them.
var benchPayloadSHA256 = map[int]string{
	64:       "ae74bfce48853efbe06fbbcc107a3bf1a26fc6a55940e3021bd82228eea0f8a2",
	1 << 10:  "76d7ec9d868965f9600b4a1ccc8a0ea1ca5a737ca0620524c6796314edb03143",
	16 << 10: "ed257e1b54f255f10b23c95990500213c6f5a2629c916d590f4a7fa86ab41644",
}

func TestBenchPayload(t *testing.T) {
	t.Parallel()
	for _, bs := range BenchSizes {
		p := BenchPayload(bs.Size)
		if len(p) != bs.Size {
			t.Errorf("%s: len = %d", bs.Name, len(p))
		}
		if !strings.Contains(p, ":") || (bs.Size > 64 && !strings.Contains(p, "\r\n")) {
			t.Errorf("%s: payload lacks a colon or CRLF", bs.Name)
		}
		sum := sha256.Sum256([]byte(p))
		if got := hex.EncodeToString(sum[:]); got != benchPayloadSHA256[bs.Size] {
			t.Errorf("%s: sha256 = %s, want %s", bs.Name, got, benchPayloadSHA256[bs.Size])
		}
	}
}
