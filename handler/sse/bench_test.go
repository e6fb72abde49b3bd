package sse_test

import (
	"testing"

	"github.com/ssebridge/ssebridge/handler/sse"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// BenchmarkEncode measures Append of a whole event (id, type, multi-line
// data) into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	for _, bs := range ssetest.BenchSizes {
		b.Run(bs.Name, func(b *testing.B) {
			ev := sse.Event{ID: "13435", Type: "message", Data: ssetest.BenchPayload(bs.Size)}
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
	for _, bs := range ssetest.BenchSizes {
		b.Run(bs.Name, func(b *testing.B) {
			data := ssetest.BenchPayload(bs.Size)
			var buf []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				buf = sse.AppendData(buf[:0], data)
			}
		})
	}
}
