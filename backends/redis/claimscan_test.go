package redis

import (
	"context"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/internal/redistest"
)

// TestClaimScanCost bounds the Redis time of the worst claim: a session
// with a topic the old owner broadcast nothing of after M (a quiet topic
// next to a busy one) makes claimscan read the owner's whole mark log in
// one script. DefaultMarkLogLength keeps that a few milliseconds (the
// review measured 76 ms with 100000 marks).
func TestClaimScanCost(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	p := srv.Prefix()
	log, cur, top := p+":{n.x}:log", p+":{n.x}:cur", p+":{n.x}:top"
	const marks = DefaultMarkLogLength
	for start := 1; start <= marks; start += 1000 {
		_, err := c.Pipelined(ctx, func(pp goredis.Pipeliner) error {
			for m := start; m < start+1000; m++ {
				vals := []any{"t", "busy", "p", strconv.Itoa(m) + "-0"}
				if m%2 == 0 { // replayed to another session
					vals = append(vals, "s", "other")
				}
				pp.XAdd(ctx, &goredis.XAddArgs{Stream: log, ID: strconv.Itoa(m) + "-1", Values: vals})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c.HSet(ctx, cur, "busy", strconv.Itoa(marks)+"-0", "quiet", "1-0", "rare", "2-0")
	claim := func(topics ...any) (time.Duration, []any) {
		const claims = 10
		var res []any
		t0 := time.Now()
		for range claims {
			var err error
			args := append([]any{"1", "2-1", "(1-1", "s1"}, topics...)
			res, err = scriptClaimScan.Run(ctx, c, []string{log, cur, top}, args...).Slice()
			if err != nil || res[0].(int64) != 1 {
				t.Fatal(res, err)
			}
		}
		return time.Since(t0) / claims, res
	}

	// The quiet topic's last mark (1) is not after M: no scan for it.
	c.HSet(ctx, top, "busy", strconv.Itoa(marks), "quiet", "1")
	per, res := claim("busy", "quiet")
	if res[1] != "3-0" || res[3] != "" || res[4] != "1-0" {
		t.Fatal(res)
	}
	t.Logf("one claim of a session with a quiet topic, %d marks: %v of Redis time (x 10000 sessions of a dead node = %v)", marks, per, per*10000)
	if per > 5*time.Millisecond {
		t.Errorf("claimscan holds Redis for %v per claim", per)
	}

	// Worst case: a topic whose only mark after M is the log's last (an
	// old log without top reads to the end likewise).
	c.HSet(ctx, top, "rare", strconv.Itoa(marks))
	per, res = claim("busy", "rare")
	if res[1] != "3-0" || res[3] != "" || res[4] != "2-0" {
		t.Fatal(res)
	}
	t.Logf("worst claim, %d marks: %v of Redis time", marks, per)
	if per > 60*time.Millisecond {
		t.Errorf("claimscan holds Redis for %v per claim", per)
	}
}
