// Command chat is a chat room on ssebridge: a page at / (plain EventSource
// and fetch, no build step) and the native endpoint at /sse, which the
// crossws WebSocketSSE client can use too. It runs on net/http (netfx) or
// fasthttp; examples/lambda serves the same room from AWS Lambda.
//
//	go run ./examples/chat            # http://localhost:8080
//	go run ./examples/chat -addr 127.0.0.1:9000
//	go run ./examples/chat -runtime fasthttp
//
// With -redis, instances share one chat through Redis Streams: run two on
// two ports, open the page on one and post through the other, or stop one
// and watch its clients resume on the other.
//
//	go run ./examples/chat -addr :8080 -redis redis://127.0.0.1:6379/0
//	go run ./examples/chat -addr :8081 -redis redis://127.0.0.1:6379/0
//
// Every text message a peer sends is delivered to every connected peer, the
// sender included, as JSON {"type":"message","from":…,"id":…,"text":…};
// whenever someone joins or leaves, everyone gets
// {"type":"presence","node":…,"every":2,"peers":[{"id":…,"name":…}]} listing
// the members connected to one instance (the page merges the instances'
// lists). A joining peer first gets
// {"type":"welcome","id":…,"name":…} with its own member id. Member ids are
// public; the peer id (the x-crossws-id) is the peer's secret and is never
// shown to others.
package main

import (
	"context"
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

	"github.com/valyala/fasthttp"

	"github.com/ssebridge/ssebridge/backends"
	redisbackend "github.com/ssebridge/ssebridge/backends/redis"
	"github.com/ssebridge/ssebridge/examples/internal/chatroom"
	ssefasthttp "github.com/ssebridge/ssebridge/fasthttp"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	rt := flag.String("runtime", "nethttp", "HTTP server: nethttp (net/http) or fasthttp")
	redisURL := flag.String("redis", "", "Redis URL (redis://host:port/db; several hosts for a cluster: redis://h1:p1?addr=h2:p2&addr=h3:p3) to share the chat between instances; default: in memory, one instance")
	prefix := flag.String("prefix", redisbackend.DefaultPrefix, "with -redis: the prefix of every key")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *rt != "nethttp" && *rt != "fasthttp" {
		fmt.Fprintf(os.Stderr, "chat: -runtime %q: want nethttp or fasthttp\n", *rt)
		os.Exit(2)
	}
	if err := run(*addr, *rt, *redisURL, *prefix, log); err != nil {
		log.Error("chat", "err", err)
		os.Exit(1)
	}
}

func run(addr, rt, redisURL, prefix string, log *slog.Logger) error {
	var backend backends.Backend // nil: in memory
	if redisURL != "" {
		client, err := redisbackend.ParseURL(redisURL)
		if err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
		defer client.Close()
		rb, err := redisbackend.New(redisbackend.Config{Client: client, Prefix: prefix, Logger: log})
		if err != nil {
			return err
		}
		defer rb.Close()
		backend = rb
	}
	room := chatroom.New()
	h, err := handler.New(handler.Config{Hooks: room.Hooks(), Centrifugo: room.Centrifugo(), Logger: log, Backend: backend})
	if err != nil {
		return err
	}
	room.Start(h)
	defer room.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Tests read this line to find the port when addr ends in ":0".
	fmt.Printf("chat: listening on http://%s\n", ln.Addr())
	log.Info("chat: serving", "runtime", rt)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serve, shutdown := serveNetHTTP(h)
	if rt == "fasthttp" {
		serve, shutdown = serveFastHTTP(h)
	}
	errc := make(chan error, 1)
	go func() { errc <- serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Streams never end on their own: close the peers first (with Redis,
	// hand them off to the other instances), then the server.
	if err := h.Shutdown(sctx); err != nil {
		log.Warn("chat: shutdown", "err", err)
	}
	return shutdown(sctx)
}

// serveNetHTTP returns how to serve the chat with net/http, and how to shut
// that server down once the Handler is.
func serveNetHTTP(h *handler.Handler) (serve func(net.Listener) error, shutdown func(context.Context) error) {
	mux := http.NewServeMux()
	sse := netfx.New(h)
	mux.Handle("/sse", sse)
	// centrifuge-js (transport "sse") and any EventSource (uni_sse).
	mux.Handle("/connection/", sse)
	mux.Handle("/emulation", sse)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		for _, kv := range chatroom.PageHeaders {
			w.Header().Set(kv[0], kv[1])
		}
		_, _ = w.Write(chatroom.Page)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serve = func(ln net.Listener) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	shutdown = func(ctx context.Context) error {
		// What is left are POSTs, which finish quickly, and connections
		// that never sent a request (browsers open some in advance), which
		// Shutdown would wait 5 s for: give it a second, then close them.
		rest, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := srv.Shutdown(rest); err != nil && !errors.Is(err, http.ErrServerClosed) {
			if !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			_ = srv.Close()
		}
		return nil
	}
	return serve, shutdown
}

// serveFastHTTP is serveNetHTTP for fasthttp.
func serveFastHTTP(h *handler.Handler) (serve func(net.Listener) error, shutdown func(context.Context) error) {
	srv := ssefasthttp.NewServer(h)
	sse := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/sse", "/connection/sse", "/connection/uni_sse", "/emulation":
			sse(ctx)
		case "/":
			if !ctx.IsGet() && !ctx.IsHead() {
				ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
				return
			}
			for _, kv := range chatroom.PageHeaders {
				ctx.Response.Header.Set(kv[0], kv[1])
			}
			ctx.SetBody(chatroom.Page)
		default:
			ctx.Error("not found", fasthttp.StatusNotFound)
		}
	}
	serve = srv.Serve
	shutdown = func(ctx context.Context) error {
		rest, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := srv.ShutdownWithContext(rest); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
	return serve, shutdown
}
