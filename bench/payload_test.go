package bench

import "github.com/ssebridge/ssebridge/internal/ssetest"

// Every library encodes the same events: this id, this type and one of
// these payloads, all built by payload below.
const (
	eventID   = "13435"
	eventType = "message"
)

// sizes are the payload sizes, as in handler/sse's BenchmarkEncode.
var sizes = ssetest.BenchSizes

// payload returns the shared benchmark payload of size bytes (pinned by
// SHA-256 in internal/ssetest).
func payload(size int) string { return ssetest.BenchPayload(size) }
