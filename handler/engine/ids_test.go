package engine_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler/engine"
)

// canonicalID reports whether s is the unpadded base64url encoding of 16
// bytes, spelled the one way the encoder spells it.
func canonicalID(s string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == 16 && base64.RawURLEncoding.EncodeToString(b) == s
}

func TestNewID(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for range 10000 {
		id := engine.NewID()
		if len(id) != engine.IDLength || !engine.ValidID(id) || !canonicalID(id) {
			t.Fatalf("NewID() = %q is not a valid id", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	valid := []string{
		"AAAAAAAAAAAAAAAAAAAAAA",
		"__________________________"[:21] + "w", // all ones, then 0b110000
		"-_-_-_-_-_-_-_-_-_-_-g",
		"0123456789abcdefABCDEQ",
	}
	for _, s := range valid {
		if !engine.ValidID(s) || !canonicalID(s) {
			t.Errorf("ValidID(%q) = %v, canonical %v; want both true", s, engine.ValidID(s), canonicalID(s))
		}
	}
	base := "AAAAAAAAAAAAAAAAAAAAA"
	invalid := []string{
		"",
		base,
		base + "AA",
		base + "B", // low bits set: a second spelling of the same bytes
		base + "P",
		base + "_",
		base + "9",
		base + "=",
		base + "+",
		base + "/",
		base + ".",
		base + " ",
		base + "\x00",
		"AAAAAAAAAA+AAAAAAAAAAA",
		"AAAAAAAAAA/AAAAAAAAAAA",
		"AAAAAAAAAA=AAAAAAAAAAA",
		"AAAAAAAAAA\nAAAAAAAAAAA"[:22],
		"AAAAAAAAAAéAAAAAAAAAA"[:22],
		"AAAAAAAAAAAAAAAAAAAAAA==",
		strings.Repeat("A", 24),
		strings.Repeat("A", 10<<10),
	}
	for _, s := range invalid {
		if engine.ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{
		"AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB", "AAAAAAAAAAAAAAAAAAAAAQ",
		"AAAAAAAAAA\nAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA=", "", engine.NewID(),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := engine.ValidID(s), canonicalID(s); got != want {
			t.Fatalf("ValidID(%q) = %v, want %v (canonical base64url of 16 bytes)", s, got, want)
		}
		if id := engine.NewID(); !engine.ValidID(id) {
			t.Fatalf("NewID() = %q is not valid", id)
		}
	})
}
