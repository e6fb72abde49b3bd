package redis

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/ssebridge/ssebridge/backends"
)

// claimAttempts is how often a claim retries when the record changed
// between its read and its compare-and-set.
const claimAttempts = 5

// record is a session record as read from its hash.
type record struct {
	owner  string
	ns     string
	base   uint64
	v      string // compared as is by the compare-and-set
	topics map[string]streamID
}

func parseRecord(h map[string]string) (record, error) {
	r := record{owner: h["o"], ns: h["ns"], v: h["v"], topics: make(map[string]streamID)}
	if !validID(r.owner) || r.v == "" {
		return r, fmt.Errorf("owner %s, version %s", short(r.owner), short(r.v))
	}
	if b := h["b"]; b != "" {
		var err error
		if r.base, err = strconv.ParseUint(b, 10, 64); err != nil {
			return r, fmt.Errorf("base seq %s", short(b))
		}
	}
	for f, v := range h {
		topic, ok := strings.CutPrefix(f, "t:")
		if !ok {
			continue
		}
		p, ok := parseID(v)
		if !ok {
			return r, fmt.Errorf("position %s of topic %s", short(v), short(topic))
		}
		r.topics[topic] = p
	}
	return r, nil
}

// Claim takes the session over for a client that got as far as c, with
// the computation of package backends: it reads the record, for a cursor
// past the record's base and with a mark reads the old owner's mark log
// and last positions (one script on the owner's slot), and moves the
// record with a compare-and-set on its version, retrying if the record
// changed meanwhile. The old owner, if it is another node and alive, gets
// a release notice in its inbox. If another node claims the session before
// this claim returns, the error wraps ErrMoved (the Receiver may then have
// been told to release a session it did not know yet). It implements
// backends.Node.
func (n *node) Claim(ctx context.Context, session string, c backends.Cursor) (backends.Session, error) {
	if n.closed.Load() {
		return backends.Session{}, n.errClosed("claim")
	}
	if !validID(session) {
		return backends.Session{}, errBadSession("claim", session)
	}
	key := n.b.sessionKey(session)
	pend := n.beginPending(session)
	defer n.endPending(session, pend)
	for range claimAttempts {
		h, err := n.b.client.HGetAll(ctx, key).Result()
		if err != nil {
			return backends.Session{}, wrap("claim "+session, err)
		}
		if len(h) == 0 {
			return backends.Session{}, fmt.Errorf("redis backend: claim %s: %w", session, backends.ErrUnknownSession)
		}
		r, err := parseRecord(h)
		if err != nil {
			return backends.Session{}, fmt.Errorf("redis backend: claim %s: malformed record: %v: %w", session, err, backends.ErrUnknownSession)
		}
		if c.Seq < r.base {
			return backends.Session{}, fmt.Errorf("redis backend: claim %s at seq %d, record at %d: %w", session, c.Seq, r.base, backends.ErrGap)
		}
		pos := r.topics
		if c.Seq > r.base && c.Mark > 0 {
			if pos, err = n.advance(ctx, session, r, c.Mark); err != nil {
				return backends.Session{}, fmt.Errorf("redis backend: claim %s: %w", session, err)
			}
		}
		args := make([]any, 0, 4+2*len(pos))
		args = append(args, n.id, r.v, strconv.FormatUint(c.Seq, 10), ms(n.b.cfg.SessionTTL))
		for t, p := range pos {
			args = append(args, "t:"+t, p.String())
		}
		v, err := scriptCAS.Run(ctx, n.b.client, []string{key}, args...).Int64()
		if err != nil {
			return backends.Session{}, wrap("claim "+session, err)
		}
		if v == 0 {
			return backends.Session{}, fmt.Errorf("redis backend: claim %s: %w", session, backends.ErrUnknownSession)
		}
		if v < 0 {
			continue // the record changed since it was read
		}
		if r.owner != n.id {
			err := n.send(ctx, r.owner, "r", session, v, 0)
			if err != nil && !isUnknown(err) {
				n.report(fmt.Errorf("redis backend: node %s: claimed session %s, but could not tell node %s to release it: %w", n.id, session, r.owner, err))
			}
		}
		out := backends.Session{SessionInfo: backends.SessionInfo{Namespace: r.ns}, Topics: make(map[string]backends.Position, len(pos))}
		for t, p := range pos {
			out.Topics[t] = p.position()
		}
		// pos belongs to the mirror from here on.
		if !n.adopt(session, pend, &mirror{ns: r.ns, base: c.Seq, v: v, topics: pos}) {
			return backends.Session{}, fmt.Errorf("redis backend: claim %s: claimed by another node meanwhile: %w", session, backends.ErrMoved)
		}
		return out, nil
	}
	return backends.Session{}, fmt.Errorf("redis backend: claim %s: the record kept changing: %w", session, backends.ErrUnavailable)
}

// advance computes the positions of a claim of session with a cursor past
// the record's base and mark M > 0, from the old owner's mark log and cur:
// for each topic, just before the first publication after mark M that the
// owner broadcast or replayed to this session (Join), or the owner's last
// position of the topic if there is none; never before the record's
// position.
func (n *node) advance(ctx context.Context, session string, r record, mark uint64) (map[string]streamID, error) {
	topics := make([]string, 0, len(r.topics))
	for t := range r.topics {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	bound := streamID{mark + 1, 1} // the log entry of mark M+1
	if mark == math.MaxUint64 {
		bound = streamID{mark, 1}
	}
	args := make([]any, 0, 4+len(topics))
	args = append(args, strconv.FormatUint(mark, 10), bound.String(), "("+streamID{mark, 1}.String(), session)
	for _, t := range topics {
		args = append(args, t)
	}
	res, err := scriptClaimScan.Run(ctx, n.b.client,
		[]string{n.b.nodeKey(r.owner, "log"), n.b.nodeKey(r.owner, "cur"), n.b.nodeKey(r.owner, "top")}, args...).Slice()
	if err != nil {
		return nil, wrap("read the marks of node "+r.owner, err)
	}
	switch ok, _ := res[0].(int64); ok {
	case 1:
	case -1:
		return nil, fmt.Errorf("mark %d is past the last mark of node %s: %w", mark, r.owner, backends.ErrGap)
	default:
		return nil, fmt.Errorf("the mark log of node %s no longer holds every mark after %d: %w", r.owner, mark, backends.ErrGap)
	}
	if len(res) != 1+2*len(topics) {
		return nil, fmt.Errorf("unexpected reply of %d values for %d topics", len(res), len(topics))
	}
	pos := make(map[string]streamID, len(topics))
	for i, t := range topics {
		p := r.topics[t]
		if first := str(res[1+2*i]); first != "" {
			id, ok := parseID(first)
			if !ok {
				return nil, fmt.Errorf("position %s in the mark log of node %s", short(first), r.owner)
			}
			p = maxID(p, id.before())
		} else if cur := str(res[2+2*i]); cur != "" {
			id, ok := parseID(cur)
			if !ok {
				return nil, fmt.Errorf("position %s in the last positions of node %s", short(cur), r.owner)
			}
			p = maxID(p, id)
		}
		pos[t] = p
	}
	return pos, nil
}
