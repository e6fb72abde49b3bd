package engine

import (
	"log/slog"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// Defaults used where a Config field is zero.
const (
	DefaultQueueSize      = 1 << 20 // 1 MiB of unwritten frames per peer
	DefaultReplaySize     = 64 << 10
	DefaultHeartbeat      = 15 * time.Second
	DefaultReconnectGrace = 30 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxTopics      = 128
	// maxBatch is the most bytes of frames written with one Write.
	maxBatch = 64 << 10
)

// Config is what the engine needs; handler.Config maps onto it. Zero values
// mean the documented defaults; negative durations disable the feature.
type Config struct {
	Hooks   Hooks            // the application's callbacks
	Backend backends.Backend // nil: a private in-memory backend
	Logger  *slog.Logger     // nil: slog.Default()

	// QueueSize bounds the bytes of frames queued for a peer and not yet
	// written to its stream (default 1 MiB). A peer that exceeds it is closed
	// with CloseSlowConsumer.
	QueueSize int
	// ReplaySize bounds the bytes of already written frames a peer keeps for
	// a client that resumes with Last-Event-ID (default 64 KiB). Each kept
	// frame counts its bytes plus 24 bytes of bookkeeping, although frames of
	// a publication are shared between its subscribers.
	ReplaySize int
	// Heartbeat is the idle interval after which a comment is written to
	// keep proxies from cutting the stream (default 15 s; negative: never).
	Heartbeat time.Duration
	// ReconnectGrace is how long a peer whose stream ended is kept for its
	// client to resume it (default 30 s; negative: close at once).
	ReconnectGrace time.Duration
	// WriteTimeout bounds each write and flush to a stream (default 10 s).
	WriteTimeout time.Duration
	// MaxStreamDuration ends a stream after this long, without closing its
	// peer, so the client reconnects and resumes (default: no limit).
	MaxStreamDuration time.Duration
	// MaxTopics bounds the subscriptions of one peer (default 128).
	MaxTopics int
	// MaxPeers bounds the peers of this node, those waiting for their
	// client to resume included (default: no limit). Stream requests over
	// the limit are asked to retry later.
	MaxPeers int
}

func (c Config) withDefaults() Config {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.ReplaySize <= 0 {
		c.ReplaySize = DefaultReplaySize
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ReconnectGrace == 0 {
		c.ReconnectGrace = DefaultReconnectGrace
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = DefaultMaxTopics
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
