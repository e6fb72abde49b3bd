package redis

import (
	"testing"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
	"github.com/ssebridge/ssebridge/internal/redistest"
)

// TestConformance runs the backend conformance suite against one private
// redis-server; every test of the suite gets its own key prefix.
func TestConformance(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return newBackend(t, testConfig(c, subPrefix(s.Prefix())))
	})
}

// TestConformanceCluster runs the suite against a private three-master
// Redis Cluster through a ClusterClient.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	c := cl.Client(t)
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return newBackend(t, testConfig(c, subPrefix(cl.Prefix())))
	})
}
