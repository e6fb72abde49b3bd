// Package engine is the transport-agnostic core of ssebridge: peers
// (sessions), their bounded outbound logs and stream writers, topics and
// fan-out, upstream dispatch, hooks, and the request/exchange views that
// runtime adapters provide.
//
// Import direction (arrows point to what is imported):
//
//	netfx, fasthttp, lambda (adapters) → handler
//	handler → handler/crossws (and other protocols) → handler/engine
//	handler → handler/engine → handler/sse, backends
//
// Nothing here imports an adapter, a protocol, a runtime library or Redis.
// Protocol packages import the engine; the engine knows a protocol only
// through the small [Codec] interface that turns payloads into frames. Users
// normally see these types through the aliases in package handler
// (handler.Peer, handler.Hooks, …).
//
// # Peers, streams and resume
//
// A [Peer] outlives its HTTP stream. Everything queued for a peer goes into
// its frame log with a sequence number. One writer (the goroutine serving the
// stream) drains the log into the stream, one write and one flush per batch.
// Written frames stay in the log, up to a byte budget, so that a client that
// reconnects with Last-Event-ID gets what it missed. A peer whose stream
// ended waits for a grace period before it is closed; a stream that resumes it
// in time takes it over.
package engine
