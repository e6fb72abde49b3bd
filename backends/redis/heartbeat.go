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
// missing, the TTLs of inbox, log, cur and top refreshed. It reports whether the
// inbox had to be created.
func (n *node) beat(ctx context.Context) (bool, error) {
	created, err := scriptHeartbeat.Run(ctx, n.b.client,
		[]string{n.alive, n.inbox, n.log, n.cur, n.top},
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
// subscribes to, and of their meta hashes (History's offsets and epochs),
// each stream before its meta, so that the meta never expires first.
func (n *node) refreshTopics(ctx context.Context) error {
	n.subMu.Lock()
	keys := make([]string, 0, 2*len(n.subs))
	for _, s := range n.subs {
		keys = append(keys, s.key, s.meta)
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

// refreshSessions extends the TTL of every mirrored session record that
// still names this node as owner (refresh.lua, one call per record, a
// pipeline per batch), re-creates the records that are missing, and
// releases the sessions whose record names another node: their release
// notice was lost (the node's inbox was lost, or the notice could not be
// sent), which this heals within NodeTTL/3.
func (n *node) refreshSessions(ctx context.Context) error {
	n.smu.Lock()
	ids := make([]string, 0, len(n.sessions))
	for id := range n.sessions {
		ids = append(ids, id)
	}
	n.smu.Unlock()
	ttl := ms(n.b.cfg.SessionTTL)
	var missing []string
	for len(ids) > 0 {
		batch := ids[:min(len(ids), refreshBatch)]
		ids = ids[len(batch):]
		res, err := n.evalBatch(ctx, scriptRefresh, "refresh", len(batch), func(i int) ([]string, []any) {
			return []string{n.b.sessionKey(batch[i])}, []any{n.id, ttl}
		})
		if err != nil {
			return fmt.Errorf("refresh session records: %w", err)
		}
		for i, r := range res {
			st, _ := r.([]any)
			code := int64(1)
			if len(st) > 0 {
				code, _ = st[0].(int64)
			}
			switch code {
			case 0:
				missing = append(missing, batch[i])
			case -1:
				var v int64
				if len(st) > 1 {
					v, _ = strconv.ParseInt(str(st[1]), 10, 64)
				}
				// v 0 would drop the session whatever the mirror's
				// version: a record without one is malformed anyway.
				if _, dropped := n.drop(batch[i], max(v, 1)); dropped && !n.closed.Load() {
					n.logInfo("redis backend: released a session claimed by another node whose release notice was lost", slog.String("session", batch[i]))
					n.recv.Release(batch[i])
				}
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return n.recreate(ctx, missing)
}

// evalBatch runs script count times in one pipeline, with the keys and
// arguments of call i, and returns the replies. Calls the server answers
// NOSCRIPT (it restarted, or a cluster node never saw the script) are sent
// again with the script's source.
func (n *node) evalBatch(ctx context.Context, script *goredis.Script, name string, count int, call func(i int) ([]string, []any)) ([]any, error) {
	cmds, err := n.b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := range count {
			keys, args := call(i)
			p.EvalSha(ctx, script.Hash(), keys, args...)
		}
		return nil
	})
	if err != nil && !goredis.HasErrorPrefix(err, "NOSCRIPT") {
		return nil, err
	}
	var retry []int
	for i, c := range cmds {
		if e := c.Err(); e != nil {
			if !goredis.HasErrorPrefix(e, "NOSCRIPT") {
				return nil, e
			}
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		src := scriptSource(name)
		again, err := n.b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, i := range retry {
				keys, args := call(i)
				p.Eval(ctx, src, keys, args...)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for k, i := range retry {
			cmds[i] = again[k]
		}
	}
	out := make([]any, len(cmds))
	for i, c := range cmds {
		out[i] = c.(*goredis.Cmd).Val()
	}
	return out, nil
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
