package fasthttp_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/fasthttp"
	"github.com/ssebridge/ssebridge/runtimetest"
)

// TestConformance runs the runtime conformance suite on fasthttp.NewServer.
func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Runtime{
		Name: "fasthttp",
		Start: func(t *testing.T, env runtimetest.Env) string {
			h := runtimetest.StartHandler(t, env)
			srv := fasthttp.NewServer(h)
			srv.Logger = discardLogger{}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = h.Shutdown(ctx)
				if err := srv.ShutdownWithContext(ctx); err != nil {
					t.Errorf("fasthttp shutdown: %v", err)
				}
				<-served
			})
			return "http://" + ln.Addr().String() + "/sse"
		},
		StreamedUploads: true,
	})
}
