package interop

import (
	"context"
	"os/exec"
	"sync"
	"testing"

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

var lambdaBuild = sync.OnceValues(func() (string, error) { return buildExample("lambda") })

// startLambdaChat runs examples/lambda -local on 127.0.0.1:0 with a fresh
// Redis, and returns the function URL's base.
func startLambdaChat(t *testing.T, ctx context.Context) string {
	t.Helper()
	rs := redistest.Start(t)
	bin, err := lambdaBuild()
	if err != nil {
		t.Fatal(err)
	}
	return startExample(t, ctx, exec.Command(bin, "-local", "127.0.0.1:0", "-redis", rs.URL(), "-prefix", rs.Prefix(),
		"-environments", "6", "-timeout", "2m"))
}
