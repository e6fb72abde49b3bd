package ssetest

import (
	"strconv"
	"strings"
)

// BenchSizes are the payload sizes of the encoder benchmarks, in
// handler/sse and in the bench module, which compares other libraries on
// the same payloads.
var BenchSizes = []struct {
	Name string
	Size int
}{
	{"64B", 64},
	{"1KiB", 1 << 10},
	{"16KiB", 16 << 10},
}

// BenchPayload returns a size-byte multi-line text payload: lines of 60
// characters (each starting with a non-space, containing spaces and colons)
// separated by "\n", with every fourth separator "\r\n". It never ends in a
// line terminator. Its SHA-256 digests are pinned in payload_test.go, so
// figures measured at different times compare identical work.
func BenchPayload(size int) string {
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
