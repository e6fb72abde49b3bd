package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// refreshBatch is the number of session records refreshed per pipeline.
const refreshBatch = 512

// beat runs the heartbeat script: alive is set, the inbox created if it is
// missing, the TTLs of inbox, log and cur refreshed. It reports whether the
// inbox had to be created.
func (n *node) beat(ctx context.Context) (bool, error) {
	created, err := scriptHeartbeat.Run(ctx, n.b.client,
		[]string{n.alive, n.inbox, n.log, n.cur},
		ms(n.b.cfg.NodeTTL), ms(n.b.keyTTL())).Int64()
	return created == 1, err
}

// heartbeatLoop beats every NodeTTL/3 and refreshes the session records;
// after a failure it retries sooner, with backoff.
func (n *node) heartbeatLoop() {
	defer close(n.hbDone)
	interval := n.b.cfg.NodeTTL / 3
	st := streak{n: n, what: "heartbeat"}
	var bo backoff
	wait := interval
	for sleep(n.ctx, wait) {
		start := time.Now()
		if err := n.heartbeat(); err != nil {
			if n.ctx.Err() != nil {
				return
			}
			st.fail(err)
			wait = min(bo.next(), interval)
			continue
		}
		st.ok()
		bo.reset()
		// The next beat is due interval after this one started, however
		// long refreshing the records took.
		wait = max(interval-time.Since(start), time.Millisecond)
	}
}

func (n *node) heartbeat() error {
	n.hbMu.Lock()
	if n.ctx.Err() != nil {
		n.hbMu.Unlock()
		return nil
	}
	lost, err := n.beat(n.ctx)
	n.hbMu.Unlock()
	if err != nil {
		return err
	}
	if lost {
		n.logInfo("redis backend: the node's inbox was gone (Redis lost its data, or the node could not reach it for NodeTTL+SessionTTL); re-created it")
		n.report(fmt.Errorf("redis backend: node %s: the inbox was gone (Redis lost its data?): re-created it and the node's session records; messages in it were lost", n.id))
	}
	if err := n.refreshTopics(n.ctx); err != nil {
		return err
	}
	return n.refreshSessions(n.ctx)
}

// refreshTopics extends the TTL of the streams of the topics the node
// subscribes to.
func (n *node) refreshTopics(ctx context.Context) error {
	n.subMu.Lock()
	keys := make([]string, 0, len(n.subs))
	for _, s := range n.subs {
		keys = append(keys, s.key)
	}
	n.subMu.Unlock()
	ttl := n.b.topicTTL()
	for len(keys) > 0 {
		batch := keys[:min(len(keys), refreshBatch)]
		keys = keys[len(batch):]
		_, err := n.b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range batch {
				p.PExpire(ctx, k, ttl)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("refresh topic streams: %w", err)
		}
	}
	return nil
}

// refreshSessions extends the TTL of every mirrored session record and
// re-creates the records that are missing.
func (n *node) refreshSessions(ctx context.Context) error {
	n.smu.Lock()
	ids := make([]string, 0, len(n.sessions))
	for id := range n.sessions {
		ids = append(ids, id)
	}
	n.smu.Unlock()
	ttl := n.b.cfg.SessionTTL
	var missing []string
	for len(ids) > 0 {
		batch := ids[:min(len(ids), refreshBatch)]
		ids = ids[len(batch):]
		cmds, err := n.b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, id := range batch {
				p.PExpire(ctx, n.b.sessionKey(id), ttl)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("refresh session records: %w", err)
		}
		for i, c := range cmds {
			if !c.(*goredis.BoolCmd).Val() {
				missing = append(missing, batch[i])
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return n.recreate(ctx, missing)
}

// recreate re-creates the missing records of sessions the node still
// mirrors (unless another node created one meanwhile).
func (n *node) recreate(ctx context.Context, ids []string) error {
	n.recoverMu.Lock()
	defer n.recoverMu.Unlock()
	type rec struct {
		id   string
		args []any
	}
	var recs []rec
	n.smu.Lock()
	for _, id := range ids {
		m := n.sessions[id]
		if m == nil {
			continue // removed or released meanwhile
		}
		args := make([]any, 0, 5+2*len(m.topics))
		args = append(args, n.id, m.ns, strconv.FormatUint(m.base, 10), m.v, ms(n.b.cfg.SessionTTL))
		for t, p := range m.topics {
			args = append(args, "t:"+t, p.String())
		}
		recs = append(recs, rec{id, args})
	}
	n.smu.Unlock()
	src := scriptSource("recreate")
	created := 0
	for len(recs) > 0 {
		batch := recs[:min(len(recs), refreshBatch)]
		recs = recs[len(batch):]
		cmds, err := n.b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, r := range batch {
				p.Eval(ctx, src, []string{n.b.sessionKey(r.id)}, r.args...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("re-create session records: %w", err)
		}
		for _, c := range cmds {
			if v, _ := c.(*goredis.Cmd).Int64(); v == 1 {
				created++
			}
		}
	}
	if created > 0 {
		n.logInfo("redis backend: re-created missing session records", slog.Int("sessions", created))
	}
	return nil
}
