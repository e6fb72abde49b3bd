// Package runtimetest is the conformance suite of runtime adapters: the
// same end-to-end tests, with real clients over real loopback HTTP, run
// against every way of serving a handler.Handler (netfx on net/http,
// fasthttp, Lambda through lambda/lambdalocal). An adapter's test calls Run
// with a Runtime that starts the suite's application (App) on it:
//
//	func TestConformance(t *testing.T) {
//		runtimetest.Run(t, runtimetest.Runtime{
//			Name: "myruntime",
//			Start: func(t *testing.T, env runtimetest.Env) string {
//				h := runtimetest.StartHandler(t, env)
//				return serveWithMyRuntime(t, h) + "/sse"
//			},
//			StreamedUploads: true,
//		})
//	}
//
// What it checks:
//   - crossws's WebSocketSSE client (npm crossws, in Node) in both of its
//     upload modes: one POST per message, and one streamed POST (or, for a
//     runtime without streamed uploads, that such an upload is refused
//     without hanging and without harming the stream);
//   - resuming a peer with Last-Event-ID, on the same instance and on
//     another one;
//   - limits (message size), origins and CORS, and bad input of every kind,
//     with the server still serving afterwards;
//   - a slow peer that stops reading while others keep receiving;
//   - two instances sharing Redis: a stream on one, POSTs and publications
//     through the other, in order;
//   - Centrifugo's transports (at the endpoint's sibling paths
//     /connection/sse, /emulation, /connection/uni_sse): connect, commands
//     through /emulation, publications with offsets, recovery, bad input,
//     and emulation through another instance.
//
// Tests that need Node (with `npm ci --prefix interop/node`) or
// redis-server skip with a message saying what to install, or fail when the
// environment variable CI is "true".
package runtimetest

import (
	"log/slog"
	"os"
	"testing"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/redistest"
)

// Runtime is one way of serving App that the suite tests.
type Runtime struct {
	// Name names the runtime in messages.
	Name string
	// Start serves App on env's backend and returns the URL of its
	// endpoint ("http://127.0.0.1:PORT/sse"). It stops what it started in
	// t.Cleanup. Instances started with the same Env form one deployment.
	Start func(t *testing.T, env Env) string
	// Distributed says that the runtime runs App in several processes
	// behind one URL, each request landing in any of them (Lambda's
	// execution environments). The suite then always gives it Redis,
	// starts it once per test and uses its URL as every instance.
	Distributed bool
	// StreamedUploads says that crossws's stream-mode uploads (a POST whose
	// body never ends) reach the application as they are sent.
	StreamedUploads bool
}

// Run runs the suite against rt.
func Run(t *testing.T, rt Runtime) {
	tests := []struct {
		name string
		fn   func(t *testing.T, rt Runtime)
	}{
		{"CrosswsMessageMode", testCrosswsMessageMode},
		{"CrosswsStreamMode", testCrosswsStreamMode},
		{"Resume", testResume},
		{"ResumeElsewhere", testResumeElsewhere},
		{"Limits", testLimits},
		{"Origins", testOrigins},
		{"BadInput", testBadInput},
		{"SlowPeer", testSlowPeer},
		{"CrossInstance", testCrossInstance},
		{"Centrifugo", testCentrifugo},
		{"CentrifugoBadInput", testCentrifugoBadInput},
		{"CentrifugoCrossInstance", testCentrifugoCrossInstance},
	}
	for _, tc := range tests {
		if tc.name == "Resume" && rt.Distributed {
			continue // every request may land in another process: ResumeElsewhere covers it
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, rt) })
	}
}

// StartHandler returns a Handler serving App on env's backend, shut down
// when the test ends. Runtimes that serve in the test's process use it in
// Start.
func StartHandler(t testing.TB, env Env) *handler.Handler {
	t.Helper()
	h, stop, err := NewHandler(env, testLogger(t))
	if err != nil {
		t.Fatalf("runtimetest: %v", err)
	}
	t.Cleanup(stop)
	return h
}

// testLogger logs at Warn and above to the test log (only shown when a
// test fails or with -v), or to nothing with SSEBRIDGE_TEST_QUIET set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SSEBRIDGE_TEST_QUIET") != "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// deployment is what a test runs against: the URLs of its instances (the
// same URL repeated for a distributed runtime).
type deployment struct {
	urls  []string
	redis bool
}

// deploy starts n instances of App on rt, sharing a fresh Redis when
// shared is set or rt is distributed, and on the in-memory backend
// otherwise (then n must be 1).
func deploy(t *testing.T, rt Runtime, n int, shared bool) deployment {
	t.Helper()
	var env Env
	if shared || rt.Distributed {
		rs := redistest.Start(t)
		env = Env{Redis: rs.URL(), Prefix: rs.Prefix()}
	} else if n != 1 {
		t.Fatalf("runtimetest: %d instances need a shared backend", n)
	}
	d := deployment{redis: env.Redis != ""}
	if rt.Distributed {
		u := rt.Start(t, env)
		for range n {
			d.urls = append(d.urls, u)
		}
		return d
	}
	for range n {
		d.urls = append(d.urls, rt.Start(t, env))
	}
	return d
}
