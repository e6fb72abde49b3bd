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
