package engine

import "testing"

func TestEphemeralIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newEphemeralID()
		if ValidID(id) || !ValidEphemeralID(id) || seen[id] {
			t.Fatalf("ephemeral id %q: ValidID %v, ValidEphemeralID %v, repeated %v", id, ValidID(id), ValidEphemeralID(id), seen[id])
		}
		seen[id] = true
		if n := NewID(); ValidEphemeralID(n) || !ValidID(n) {
			t.Fatalf("id %q taken for an ephemeral one", n)
		}
	}
	for _, s := range []string{"", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB.", "AAAAAAAAAAAAAAAAAAAA.B", "AAAAAAAAAAAAAAAAAAAAAC"} {
		if ValidEphemeralID(s) {
			t.Errorf("ValidEphemeralID(%q) = true", s)
		}
	}
	if !ValidEphemeralID("AAAAAAAAAAAAAAAAAAAAAB") {
		t.Error(`ValidEphemeralID("…B") = false`)
	}
}

// TestRingWithoutReplay: a log without replay budget keeps its ring
// through bursts (no shrink at every drain), and halves it after many
// drains that leave it mostly empty, or at once when idle (compact).
func TestRingWithoutReplay(t *testing.T) {
	l := newFrameLog(1)
	frame := []byte("x")
	burst := func(n int) {
		for range n {
			if _, ok := l.push(frame, 0, 1<<30); !ok {
				t.Fatal("push refused")
			}
		}
		l.advance(l.next, 0)
	}
	burst(512)
	if len(l.ring) != 512 || l.n != 0 {
		t.Fatalf("ring %d, n %d after a burst", len(l.ring), l.n)
	}
	burst(400) // bursts of about the same size: no reallocation
	if len(l.ring) != 512 {
		t.Fatalf("ring %d after a second burst, want 512 kept", len(l.ring))
	}
	for range shrinkAfter - 3 { // the two bursts left it empty too
		burst(1)
	}
	if len(l.ring) != 512 {
		t.Fatalf("ring %d before %d small drains", len(l.ring), shrinkAfter)
	}
	burst(1)
	if len(l.ring) != 256 {
		t.Fatalf("ring %d after %d small drains, want 256", len(l.ring), shrinkAfter)
	}
	l.compact()
	if len(l.ring) != 64 {
		t.Fatalf("ring %d after compact, want 64", len(l.ring))
	}
}
