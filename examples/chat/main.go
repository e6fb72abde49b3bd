// Command chat is a chat room on ssebridge: a page at / (plain EventSource
// and fetch, no build step) and the native endpoint at /sse, which the
// crossws WebSocketSSE client can use too.
//
//	go run ./examples/chat            # http://localhost:8080
//	go run ./examples/chat -addr 127.0.0.1:9000
//
// Every text message a peer sends is delivered to every connected peer, the
// sender included, as JSON {"type":"message","from":…,"id":…,"text":…};
// whenever someone joins or leaves, everyone gets
// {"type":"presence","peers":[{"id":…,"name":…}]}. A joining peer first gets
// {"type":"welcome","id":…,"name":…} with its own member id. Member ids are
// public; the peer id (the x-crossws-id) is the peer's secret and is never
// shown to others.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

//go:embed index.html
var page []byte

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, log); err != nil {
		log.Error("chat", "err", err)
		os.Exit(1)
	}
}

func run(addr string, log *slog.Logger) error {
	room := newRoom()
	h, err := handler.New(handler.Config{Hooks: room.hooks(), Logger: log})
	if err != nil {
		return err
	}
	room.h = h

	mux := http.NewServeMux()
	mux.Handle("/sse", netfx.New(h))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		_, _ = w.Write(page)
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Tests read this line to find the port when addr ends in ":0".
	fmt.Printf("chat: listening on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Streams never end on their own: close the peers first, then the server.
	if err := h.Shutdown(shutdown); err != nil {
		log.Warn("chat: shutdown", "err", err)
	}
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
