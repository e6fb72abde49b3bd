package redis

import (
	"errors"
	"testing"

	"github.com/ssebridge/ssebridge/backends"
)

// TestRouteTo: a message goes to the inbox of the node the caller names,
// without a look-up of the session; a node that does not exist or is
// gone gets nothing written and ErrUnknownSession.
func TestRouteTo(t *testing.T) {
	srv, c := startServer(t)
	b := newBackend(t, testConfig(c, srv.Prefix()))
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustRegister(t, a, ra, "AAAAAAAAAAAAAAAAAAAAAB")
	var r backends.DirectRouter = o
	if err := r.RouteTo(bg, a.ID(), "AAAAAAAAAAAAAAAAAAAAAB", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if got := ra.WaitUpstream(t, 1); string(got[0].Data) != "one" {
		t.Fatalf("delivered %+v", got)
	}
	for _, node := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "../x", ""} {
		if err := r.RouteTo(bg, node, "AAAAAAAAAAAAAAAAAAAAAB", []byte("x")); !errors.Is(err, backends.ErrUnknownSession) {
			t.Errorf("RouteTo(%q) = %v, want ErrUnknownSession", node, err)
		}
	}
	before := len(srv.Keys(t))
	_ = a.Close()
	if err := r.RouteTo(bg, a.ID(), "AAAAAAAAAAAAAAAAAAAAAB", []byte("late")); !errors.Is(err, backends.ErrUnknownSession) {
		t.Errorf("RouteTo a closed node = %v, want ErrUnknownSession", err)
	}
	if n := len(srv.Keys(t)); n > before {
		t.Errorf("%d keys after routing to a closed node, %d before", n, before)
	}
}
