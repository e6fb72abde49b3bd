// Command lambda serves the example chat (the room of examples/chat) from
// an AWS Lambda function URL with response streaming: the page at / and
// the ssebridge endpoint at /sse. Execution environments share nothing, so
// the chat runs on Redis (backends/redis).
//
// Without -local, the binary is the function's bootstrap (runtime
// provided.al2023); it reads SSEBRIDGE_REDIS_URL and SSEBRIDGE_REDIS_PREFIX
// from the environment. With -local, it serves the chat on your machine
// through the local function URL emulator (lambda/lambdalocal), which runs
// this same binary as the function's execution environments:
//
//	go run ./examples/lambda -local 127.0.0.1:9000 -redis redis://127.0.0.1:6379/0
//
// See README.md for deploying it with SAM and for the Lambda limits that
// matter.
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
	"runtime"
	"syscall"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	redisbackend "github.com/ssebridge/ssebridge/backends/redis"
	"github.com/ssebridge/ssebridge/examples/internal/chatroom"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/lambda"
	"github.com/ssebridge/ssebridge/lambda/lambdalocal"
)

func main() {
	local := flag.String("local", "", "serve through the local function URL emulator on this address (host:port) instead of being the function's bootstrap")
	redisURL := flag.String("redis", os.Getenv("SSEBRIDGE_REDIS_URL"), "Redis URL (default $SSEBRIDGE_REDIS_URL)")
	prefix := flag.String("prefix", envOr("SSEBRIDGE_REDIS_PREFIX", redisbackend.DefaultPrefix), "Redis key prefix (default $SSEBRIDGE_REDIS_PREFIX or ssebridge)")
	envs := flag.Int("environments", 4, "with -local: execution environments (each serves one request at a time)")
	timeout := flag.Duration("timeout", 2*time.Minute, "with -local: the function timeout (Lambda allows up to 15m)")
	margin := flag.Duration("margin", envDuration("SSEBRIDGE_MARGIN", lambda.DefaultMargin), "how long before the invocation deadline streams end")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	var err error
	if *local != "" {
		err = runLocal(*local, *redisURL, *prefix, *envs, *timeout, *margin, log)
	} else {
		err = runFunction(*redisURL, *prefix, *margin, log)
	}
	if err != nil {
		log.Error("lambda example", "err", err)
		os.Exit(1)
	}
}

// runFunction is the function: it never returns unless it cannot start.
func runFunction(redisURL, prefix string, margin time.Duration, log *slog.Logger) error {
	var backend backends.Backend // nil: memory, which lambda.Start warns about
	if redisURL != "" {
		client, err := redisbackend.ParseURL(redisURL)
		if err != nil {
			return fmt.Errorf("redis URL: %w", err)
		}
		rb, err := redisbackend.New(redisbackend.Config{Client: client, Prefix: prefix, Logger: log})
		if err != nil {
			return err
		}
		backend = rb
	}
	room := chatroom.New()
	h, err := handler.New(handler.Config{
		Hooks:      room.Hooks(),
		Centrifugo: room.Centrifugo(),
		Logger:     log,
		Backend:    backend,
		// Clients come back quickly when a stream ends with its
		// invocation.
		Retry: 500 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	room.Start(h)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		for _, kv := range chatroom.PageHeaders {
			w.Header().Set(kv[0], kv[1])
		}
		_, _ = w.Write(chatroom.Page)
	})
	lambda.Start(h, lambda.Config{Margin: margin, Logger: log, Path: "/sse", Other: page})
	return nil
}

// runLocal serves the function through the emulator, with this binary as
// the bootstrap of every execution environment.
func runLocal(addr, redisURL, prefix string, envs int, timeout, margin time.Duration, log *slog.Logger) error {
	if redisURL == "" {
		return errors.New("-local needs -redis: execution environments share nothing but the backend")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	emu, err := lambdalocal.New(lambdalocal.Config{
		Command:      []string{self},
		Env:          []string{"SSEBRIDGE_REDIS_URL=" + redisURL, "SSEBRIDGE_REDIS_PREFIX=" + prefix, "SSEBRIDGE_MARGIN=" + margin.String()},
		Environments: envs,
		Timeout:      timeout,
		Freeze:       runtime.GOOS == "linux",
		FunctionName: "ssebridge-chat",
	})
	if err != nil {
		return err
	}
	defer emu.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("lambda: listening on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Streams last until their invocation's margin: do not wait for them.
	_ = srv.Close()
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}
