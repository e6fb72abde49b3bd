package interop

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
)

// The chat example on its other runtimes: fasthttp (examples/chat -runtime
// fasthttp) and AWS Lambda through the local function URL emulator
// (examples/lambda -local), with the same real clients as on net/http.

func TestChatFastHTTPCrosswsStreamMode(t *testing.T) {
	testChatCrossws(t, "stream", startChat(t, testContext(t), "-runtime", "fasthttp"))
}

func TestChatFastHTTPCrosswsMessageMode(t *testing.T) {
	testChatCrossws(t, "message", startChat(t, testContext(t), "-runtime", "fasthttp"))
}

func TestChromiumChatFastHTTP(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	base := startChat(t, ctx, "-runtime", "fasthttp")
	chatTwoPages(t, ctx, [2]chatter{
		{name: "alice", base: base, say: "héllo over fasthttp ✓"},
		{name: "bob", base: base, say: "bob's fasthttp reply"},
	})
}

// TestChatLambdaCrosswsMessageMode: crossws clients (message mode: Lambda
// cannot take streamed uploads) on the chat served by Lambda execution
// environments, which share the room through Redis.
func TestChatLambdaCrosswsMessageMode(t *testing.T) {
	requireNode(t)
	testChatCrossws(t, "message", startLambdaChat(t, testContext(t)))
}

// TestChromiumChatLambda: two browser pages on the chat served by Lambda
// execution environments.
func TestChromiumChatLambda(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	base := startLambdaChat(t, ctx)
	chatTwoPages(t, ctx, [2]chatter{
		{name: "alice", base: base, say: "héllo from a Lambda stream ✓"},
		{name: "bob", base: base, say: "bob's reply through another environment"},
	})
}

// TestChromiumChatLambdaAcrossInvocations: the same with 5 s invocations,
// so that each page's stream ends (2 s before the deadline) and the browser
// resumes it in another invocation, several times before alice writes.
func TestChromiumChatLambdaAcrossInvocations(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	base := startLambdaChat(t, ctx, "-timeout", "5s", "-margin", "2s")
	chatTwoPages(t, ctx, [2]chatter{
		{name: "alice", base: base, say: "still here after three invocations", wait: 7 * time.Second},
		{name: "bob", base: base, say: "so am I"},
	})
}

var lambdaBuild = sync.OnceValues(func() (string, error) { return buildExample("lambda") })

// startLambdaChat runs examples/lambda -local on 127.0.0.1:0 with a fresh
// Redis, and returns the function URL's base.
// Later args override the defaults (a 2 min function timeout).
func startLambdaChat(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	rs := redistest.Start(t)
	bin, err := lambdaBuild()
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"-local", "127.0.0.1:0", "-redis", rs.URL(), "-prefix", rs.Prefix(),
		"-environments", "6", "-timeout", "2m"}, args...)
	return startExample(t, ctx, exec.Command(bin, args...))
}
