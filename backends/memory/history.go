package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"slices"

	"github.com/ssebridge/ssebridge/backends"
)

// Offsets and epochs (backends.History). A topic struct holds the offset of
// its last publication and an epoch, 8 base64url characters of
// crypto/rand chosen when the struct is created: when a node subscribes to
// a topic the backend does not hold, or a session record names it. Publish
// gives the topic's publications offsets 1, 2, 3… under the topic's mutex,
// in the order every node broadcasts them; the history keeps the newest
// HistoryLength, whose offsets are therefore consecutive. A topic no node
// subscribes to and no session record names is forgotten with its history
// (Publish to it keeps nothing): kept again later, it starts over at
// offset 1 in a new epoch.

// newEpoch returns a new random epoch: 8 base64url characters.
func newEpoch() string {
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// History returns the topic's offset and epoch and the publications req
// asks for, from the topic's history. For a topic the backend holds no
// history for (never published to nor subscribed, or unused for
// HistoryTTL), it returns offset 0, epoch "" and no publication: such a
// topic has no epoch yet. It implements backends.History.
func (n *node) History(_ context.Context, name string, req backends.HistoryRequest) (backends.HistoryResult, error) {
	n.b.mu.RLock()
	t := n.b.topics[name]
	closed := n.closed
	n.b.mu.RUnlock()
	if closed {
		return backends.HistoryResult{}, backends.ErrClosed
	}
	if t == nil {
		return backends.HistoryResult{}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	res := backends.HistoryResult{StreamPosition: backends.StreamPosition{Offset: t.offset, Epoch: t.epoch}}
	if len(t.history) == 0 || req.Limit == 0 {
		return res, nil
	}
	if req.Since != nil && req.Since.Epoch != t.epoch {
		return res, nil
	}
	// The history holds offsets first to top; select [from, to].
	top := t.offset
	first := top - uint64(len(t.history)) + 1
	from, to := first, top
	if s := req.Since; s != nil {
		if req.Reverse {
			if s.Offset <= first {
				return res, nil
			}
			to = min(to, s.Offset-1)
		} else {
			if s.Offset >= top {
				return res, nil
			}
			from = max(from, s.Offset+1)
		}
	}
	if req.Limit > 0 && uint64(req.Limit) <= to-from {
		if req.Reverse {
			from = to - uint64(req.Limit) + 1
		} else {
			to = from + uint64(req.Limit) - 1
		}
	}
	res.Publications = make([]backends.Publication, 0, to-from+1)
	for o := from; o <= to; o++ {
		p := t.history[o-first]
		p.Data = slices.Clone(p.Data)
		res.Publications = append(res.Publications, p)
	}
	if req.Reverse {
		slices.Reverse(res.Publications)
	}
	return res, nil
}

var _ backends.History = (*node)(nil)
