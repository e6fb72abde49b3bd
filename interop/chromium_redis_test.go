package interop

import (
	"context"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
)

// chromiumRedisBudget bounds TestChromiumChatAcrossRedisInstances from the
// moment both chat instances run (building examples/chat and starting Redis
// come before): the browser, the pages and every wait.
const chromiumRedisBudget = 20 * time.Second

// TestChromiumChatAcrossRedisInstances: two examples/chat instances, A and
// B, share one private Redis. In a real headless Chromium, page "ada" is
// opened on A and page "bob" on B. Each instance announces only its own
// members (when one joins or leaves, and every 2 s); each page merges the
// instances' lists and must list both members. Then ada writes (POST to A)
// and bob answers (POST to B): both pages show both messages, with the
// right senders, in the same order.
func TestChromiumChatAcrossRedisInstances(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	rs := redistest.Start(t)
	a := startRedisChat(t, ctx, "A", rs.URL())
	b := startRedisChat(t, ctx, "B", rs.URL())
	ctx, cancel := context.WithTimeout(ctx, chromiumRedisBudget)
	t.Cleanup(cancel)
	t.Logf("A %s, B %s, Redis %s", a.base, b.base, rs.Addr())
	chatTwoPages(t, ctx, [2]chatter{
		{name: "ada", base: a.base, say: "hello from A"},
		{name: "bob", base: b.base, say: "hello from B"},
	})
}
