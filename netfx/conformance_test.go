package netfx_test

import (
	"net/http/httptest"
	"testing"

	"github.com/ssebridge/ssebridge/netfx"
	"github.com/ssebridge/ssebridge/runtimetest"
)

// TestConformance runs the runtime conformance suite on net/http.
func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Runtime{
		Name: "netfx",
		Start: func(t *testing.T, env runtimetest.Env) string {
			h := runtimetest.StartHandler(t, env)
			srv := httptest.NewServer(netfx.New(h))
			t.Cleanup(func() {
				srv.CloseClientConnections()
				srv.Close()
			})
			return srv.URL + "/sse"
		},
		StreamedUploads: true,
	})
}
