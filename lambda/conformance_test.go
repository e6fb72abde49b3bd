package lambda_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/lambda/lambdalocal"
	"github.com/ssebridge/ssebridge/runtimetest"
)

// buildDir holds the function the tests build; TestMain removes it.
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ssebridge-lambda-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// suiteFunction builds lambda/internal/suitefn (runtimetest.App as a Lambda
// function) once per test binary.
var suiteFunction = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(buildDir, "bootstrap")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-tags", "lambda.norpc", "-o", bin, "./internal/suitefn")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./lambda/internal/suitefn: %v\n%s", err, out)
	}
	return bin, nil
})

// emulate serves the suite's function through lambdalocal with env's
// backend, and returns the function URL's endpoint.
func emulate(t *testing.T, env runtimetest.Env, timeout, margin time.Duration) string {
	t.Helper()
	return emulateB(t, env, timeout, margin)
}

// emulateB is emulate for tests and benchmarks.
func emulateB(t testing.TB, env runtimetest.Env, timeout, margin time.Duration) string {
	t.Helper()
	bin, err := suiteFunction()
	if err != nil {
		t.Fatal(err)
	}
	emu, err := lambdalocal.New(lambdalocal.Config{
		Command: []string{bin},
		Env: []string{
			"SSEBRIDGE_REDIS_URL=" + env.Redis,
			"SSEBRIDGE_REDIS_PREFIX=" + env.Prefix,
			"SSEBRIDGE_MARGIN=" + margin.String(),
		},
		Environments: 6,
		Timeout:      timeout,
		// A never-ending upload (crossws's stream mode) is refused after
		// this long; Lambda's own limit is not documented.
		RequestReadTimeout: 2 * time.Second,
		Freeze:             runtime.GOOS == "linux",
		Output:             testOutput{t},
	})
	if err != nil {
		t.Fatalf("lambdalocal: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(func() {
		// The emulator first: like Lambda, it keeps reading a function's
		// response after its client left, until the function ends it.
		_ = emu.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL + "/sse"
}

// testOutput shows the environments' output in the test log.
type testOutput struct{ t testing.TB }

func (o testOutput) Write(p []byte) (int, error) {
	o.t.Log(string(p))
	return len(p), nil
}

// TestConformance runs the runtime conformance suite on Lambda, through the
// local function URL emulator: every request is an invocation, in any of
// six execution environments (processes, frozen between invocations), and
// the environments share state only through Redis.
func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Runtime{
		Name: "lambda",
		Start: func(t *testing.T, env runtimetest.Env) string {
			return emulate(t, env, 2*time.Minute, 5*time.Second)
		},
		Distributed: true,
		// Lambda reads a request's whole body before invoking the function.
		StreamedUploads: false,
	})
}
