package interop

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

// TestEventSourceSurvivesShutdown: Handler.Shutdown ends streams without a
// close event "so that clients reconnect". Here a restart: the handler
// shuts down, its server keeps listening a moment (as when Shutdown runs
// before http.Server.Shutdown, the documented order), the client's
// reconnection reaches it, and then a new handler serves the address. The
// client (npm eventsource, which follows the EventSource spec) must come
// back on the new handler: the shutting-down server must not answer its
// reconnection with a status that makes an EventSource stop for good (any
// status but 200 makes an EventSource stop, and 204 is how this protocol
// says "stop" on purpose).
func TestEventSourceSurvivesShutdown(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	logs := new(syncBuffer)
	newHandler := func(hooks handler.Hooks) *handler.Handler {
		h, err := handler.New(handler.Config{Retry: 100 * time.Millisecond, Hooks: hooks, Logger: bufferLogger(logs)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = h.Shutdown(ctx)
		})
		return h
	}
	old := newHandler(handler.Hooks{})
	next := newHandler(handler.Hooks{Open: func(p *handler.Peer) { _ = p.SendText("done") }})
	var current atomic.Pointer[handler.Handler]
	current.Store(old)
	log := new(requestLog)
	srv := httptest.NewServer(log.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		netfx.New(current.Load()).ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)

	proc := startNode(t, ctx, "eventsource.mjs", map[string]any{"url": srv.URL + "/sse", "exitOnGiveUp": true})
	var evs []nodeEvent
	for {
		ev, ok := proc.Next(ctx)
		if !ok {
			t.Fatalf("the script ended before its first crossws-id: %v%s", proc.Wait(ctx), dump(evs))
		}
		evs = append(evs, ev)
		if ev.Event == "post" { // connected, and its POST is done
			break
		}
	}
	first := only(evs, "crossws-id")[0].Data

	if err := old.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait for the reconnection to reach the old handler, then hand the
	// address over to the new one.
	if err := waitUntil(ctx, func() bool {
		for _, r := range log.requests("GET") {
			if strings.HasPrefix(r.LastEventID, first+".") && r.Done {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no reconnection reached the old handler: %v; requests:%s", err, log)
	}
	current.Store(next)

	rest, err := proc.Collect(ctx)
	evs = append(evs, rest...)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, dump(evs))
	}
	if len(only(evs, "gave-up")) > 0 {
		t.Fatalf("the EventSource gave up for good instead of reconnecting after the server shut down; requests:%s\nclient:%s", log, dump(evs))
	}
	hellos := only(evs, "crossws-id")
	if len(hellos) != 2 || hellos[1].Data == first {
		t.Errorf("want a second crossws-id, with a new peer id from the new handler:%s", dump(evs))
	}
}
