package bench

import (
	"os"
	"testing"
)

// TestMain turns the test binary into one of the connection benchmarks'
// child processes when childEnv says so (see child_test.go); otherwise it
// runs the tests and benchmarks.
func TestMain(m *testing.M) {
	if code, ok := runChild(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
