package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ssebridge/ssebridge/backends"
)

// Offsets and epochs (backends.History). Each topic has a meta hash next
// to its stream, P:{t<k>}:meta:<t>, in the stream's slot: e is the epoch,
// o the offset of the last publication, s the id of the epoch's first
// entry. The publish script gives each entry the next offset (field o of
// the entry) and keeps the meta's TTL the stream's; the subscribe script
// and the heartbeat refresh both TTLs together. The numbering lives
// exactly as long as the stream, whose entries' predecessor chain already
// tells when history was lost: a publication or a Subscribe that finds no
// stream deletes the meta, so the topic starts over at offset 1 in a new
// epoch. Epochs come from the nodes: every script call that may start one
// is given a new candidate (node.newEpoch), used only when the topic has
// none.
//
// History reads the meta and the entries in one script (history.lua).
// Offsets are dense within an epoch and the stream keeps the newest
// entries, so the entries after offset N are the stream's newest o-N: no
// search, and no read beyond what the stream holds.

// History returns the topic's offset and epoch and the publications req
// asks for. A topic whose stream does not exist (no node subscribed to it
// and nothing was published for HistoryAge+NodeTTL, or Redis lost it) has
// offset 0, epoch "" and no publications: its next Subscribe or
// publication starts a new epoch. It implements backends.History.
func (n *node) History(ctx context.Context, topic string, req backends.HistoryRequest) (backends.HistoryResult, error) {
	const op = "history"
	if err := checkTopic(topic); err != nil {
		return backends.HistoryResult{}, err
	}
	if n.closed.Load() {
		return backends.HistoryResult{}, n.errClosed(op)
	}
	since, epoch := "", ""
	if req.Since != nil {
		since, epoch = strconv.FormatUint(req.Since.Offset, 10), req.Since.Epoch
	}
	limit := int64(req.Limit)
	if limit < 0 {
		limit = -1
	}
	reverse := 0
	if req.Reverse {
		reverse = 1
	}
	res, err := scriptHistory.Run(ctx, n.b.client, []string{n.b.topicKey(topic), n.b.metaKey(topic)},
		since, epoch, limit, reverse, n.newEpoch()).Slice()
	if err != nil {
		return backends.HistoryResult{}, wrap(op+" "+topic, err)
	}
	bad := func() (backends.HistoryResult, error) {
		return backends.HistoryResult{}, fmt.Errorf("redis backend: %s %s: unexpected reply of %d values", op, topic, len(res))
	}
	if len(res) < 2 || (len(res)-2)%5 != 0 {
		return bad()
	}
	top, err := strconv.ParseUint(str(res[0]), 10, 64)
	if err != nil {
		return bad()
	}
	out := backends.HistoryResult{StreamPosition: backends.StreamPosition{Offset: top, Epoch: str(res[1])}}
	if len(res) == 2 {
		return out, nil
	}
	out.Publications = make([]backends.Publication, 0, (len(res)-2)/5)
	for i := 2; i < len(res); i += 5 {
		o, err := strconv.ParseUint(str(res[i+1]), 10, 64)
		if err != nil {
			return bad()
		}
		out.Publications = append(out.Publications, backends.Publication{
			Topic:     topic,
			Position:  backends.Position(str(res[i])),
			Offset:    o,
			Namespace: str(res[i+2]),
			Exclude:   str(res[i+3]),
			Data:      []byte(str(res[i+4])),
		})
	}
	return out, nil
}

var _ backends.History = (*node)(nil)
