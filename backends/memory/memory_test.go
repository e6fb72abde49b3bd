package memory_test

import (
	"testing"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
	"github.com/ssebridge/ssebridge/backends/memory"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(*testing.T) backends.Backend { return memory.New() })
}

func TestCountsReturnToZero(t *testing.T) {
	b := memory.New()
	r := backendtest.NewRecorder()
	n, err := b.Attach(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.RegisterSession(t.Context(), "s"); err != nil {
		t.Fatal(err)
	}
	if err := n.Subscribe(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	if b.Sessions() != 1 || b.Topics() != 1 {
		t.Fatalf("sessions %d topics %d, want 1 and 1", b.Sessions(), b.Topics())
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Sessions() != 0 || b.Topics() != 0 {
		t.Fatalf("after Close: sessions %d topics %d, want 0 and 0", b.Sessions(), b.Topics())
	}
}
