// Package redis is a backends.Backend on Redis Streams: several ssebridge
// nodes (processes, hosts, Lambda execution environments) behind one URL
// share sessions and topics through one Redis server (7.0 or later) or
// Redis Cluster.
//
// # Keys
//
// Every key starts with Config.Prefix (P below, default "ssebridge"). The
// part in braces is the Redis Cluster hash tag: every script and multi-key
// command touches the keys of one tag only, so the backend runs unchanged on
// a single server and on a cluster.
//
//	P:{n.<node>}:alive   string  the node is alive; PX NodeTTL, set every NodeTTL/3
//	P:{n.<node>}:inbox   stream  upstream messages for the node's sessions
//	                             (t=m, or f when forwarded; s=session, d=data)
//	                             and release notices (t=r, s=session,
//	                             d=record version); the reader trims what it
//	                             read
//	P:{n.<node>}:log     stream  the node's marks: id <mark>-1, t=topic,
//	                             p=position, and s=session for the marks of
//	                             publications Join replayed to a session;
//	                             MAXLEN ~ MarkLogLength
//	P:{n.<node>}:cur     hash    topic → position of the node's last broadcast
//	                             publication of the topic (after a Join: its
//	                             subscription's position then, if later)
//	P:{n.<node>}:top     hash    topic → the highest mark the node logged for
//	                             the topic (claims read the log no further)
//	P:{s.<session>}      hash    session record: o=owner node, ns=namespace,
//	                             b=base seq, v=version (incremented on every
//	                             change), t:<topic>=position
//	P:{t<k>}:topic:<t>   stream  topic t's history: pv=id of the previous
//	                             entry, o=offset, ns, x=exclude, d=data; k is
//	                             FNV-1a(t) modulo TopicBuckets; MAXLEN ~
//	                             HistoryLength, MINID ~ now-HistoryAge
//	P:{t<k>}:meta:<t>    hash    topic t's numbering (backends.History):
//	                             e=epoch, o=offset of the last publication,
//	                             s=id of the epoch's first entry
//	P:{t<k>}:last        string  the last id given out in bucket k
//	P:{t<k>}:wake:<node> stream  wakes the node's reader of bucket k (MAXLEN 1)
//	P:{p.<c>}:presence   hash    channel c's presence: client → entry (see
//	                             presence.go for the encoding)
//	P:{p.<c>}:presence-exp zset  client → expiry (unix ms, Redis' clock)
//
// No key lives forever. alive expires NodeTTL after the node's last
// heartbeat; inbox, log, cur and top NodeTTL+SessionTTL after it. Session
// records expire SessionTTL after their owner's last refresh (every
// NodeTTL/3). Topic streams expire HistoryAge+NodeTTL after the last
// publication or the last heartbeat of a node subscribed to the topic, and
// so do their meta hashes (refreshed with them); a bucket's last id
// HistoryAge+NodeTTL after the bucket's last publication.
// Wake streams expire NodeTTL+SessionTTL after the last Subscribe.
// A channel's presence keys expire when its latest presence entry does.
// Close deletes alive, inbox and the node's wake streams; session records,
// log, cur and top stay, so that the node's sessions remain resumable
// elsewhere until their records expire.
//
// Positions are topic stream ids, "ms-seq" (Position "" is 0-0), compared
// numerically. The ids of publications are unique across all topics: the
// publish script picks them itself, from Redis' clock, one increasing
// sequence per bucket, and a sequence number congruent to the bucket's
// index modulo TopicBuckets, never 0. An id "ms-0" is the start of a
// stream: Subscribe creates a missing stream with last id <now>-0 and
// returns that position.
// Node ids are 22 characters of base64url. Session ids must be 1 to 64
// characters of [A-Za-z0-9_-]; anything else is refused, with an error
// wrapping backends.ErrUnknownSession, before a key is built or Redis is
// called. Topic names are 1 to 1024 bytes, and so are presence channel
// names (backends.CheckPresence).
//
// # How it works
//
// Owner reads the record's owner field (HGET), whether that node is alive
// or not. Route looks up the session's owner the same way and adds the
// message to the owner's inbox with one script that refuses a node that is
// not alive
// (nothing is written, no key created) and answers ErrUnavailable when the
// inbox holds InboxLength unread messages. Each node reads its inbox with a
// blocking XREAD and hands the messages to Deliver, one goroutine per
// session with pending messages, in order per session. At most 4096
// messages (and about 32 MiB) wait in memory; beyond that the node stops
// reading and the inbox fills up (backpressure: Route fails, nothing is
// lost). A message
// whose session was claimed away meanwhile is forwarded to the new owner
// once.
//
// Publish adds the publication to the topic's stream. Each node reads the
// streams of the topics it subscribes to, one blocking multi-key XREAD per
// bucket of topics (one slot; Subscribe wakes a reader blocked on its old
// list of streams), numbers the publications with its marks, writes the
// marks and its last positions to its log and cur in one script before it
// broadcasts them, and calls Broadcast in mark order. Claim follows the
// computation of package backends: it reads the old owner's log, cur and
// top in one script on the owner's slot (skipping the log entries of other
// sessions' replays, and the topics without a mark after the cursor's) and
// moves the record with a compare-and-set on its version; the old owner
// gets a release notice in its inbox. The heartbeat refreshes the node's
// session records with a script that leaves a record naming another node
// alone: the node then releases the session (Receiver.Release), which
// heals a lost release notice within NodeTTL/3.
//
// Join (a session taken over) subscribes the node to the topic if needed,
// then takes the broadcast lock, under which marks are given and Broadcast
// is called: it reads the topic's history from the session's position up
// to the node's subscription cursor (the position of its last broadcast of
// the topic, or its start), with Replay's gap check, writes a new mark per
// entry to the log, tagged s=<session>, and only then calls replay for
// each entry in order and joined with the cursor. No Broadcast comes in
// between, so marks stay in delivery order. A session's position can be
// ahead of the node's cursor (the node's reader lags behind the old
// owner's): Join then waits, up to BlockTimeout, until the node has
// broadcast the publications in between, which would otherwise reach the
// session a second time. If the marks cannot be written
// Join calls neither and fails with ErrUnavailable; the marks it meant to
// give are skipped (never reused: the write may have reached Redis), which
// claims handle like any mark a client did not get.
//
// Nodes implement backends.History: every publication of a topic gets an
// offset (1, 2, 3… in the topic's epoch) from the publish script, kept in
// its entry, broadcast and replayed with it; the numbering starts over in a
// new epoch whenever the topic's stream is created anew (see offsets.go).
//
// # Guarantees and limits
//
//   - Every node sees the publications of a topic in stream order; marks
//     increase per node in the order of the Broadcast and Join replay
//     calls (1, 2, 3…, but for the marks a failed Join or an Unsubscribe
//     that gave up waiting skipped), and are in the log before those calls.
//   - Messages routed for one session from one goroutine reach Deliver in
//     order. A message is lost if its owner dies (or closes) before it
//     reads it, or if it cannot be handed over (reported through the
//     Receiver's Error); and the messages the owner has read from its inbox
//     (which it trims at once) but not yet handed to Deliver, up to 4096
//     messages or 32 MiB queued in memory, are lost if the node dies.
//   - Replay reports ErrGap when an entry after the position was trimmed
//     or the topic's stream expired. Redis 7 does not record the ids it
//     trims (XINFO's max-deleted-entry-id stays 0-0), so every entry records
//     the id of its predecessor (pv): the first entry after a position
//     must not have a predecessor after it. Subscribe creates a topic's
//     stream if it does not exist, and subscribed nodes keep it from
//     expiring; a stream that had to be re-created by a publication
//     reports a gap for every position before it. Set HistoryAge above
//     SessionTTL (New warns otherwise), so that a session resumed after its
//     owner died finds its topics' history. A replay from Position "" (before
//     any publication) reports no gap when the stream's entries go back to
//     its start: a topic whose stream was lost (with Redis' data) looks new
//     to it.
//   - Redis failures: calls return errors wrapping backends.ErrUnavailable.
//     Background loops report the first failure of a streak through the
//     Receiver's Error, log the recovery at Info, and retry with backoff
//     (50 ms doubling to 2 s). After a restart that lost the data, the
//     heartbeat re-creates the node's keys and its session records, and
//     the readers resume by themselves. Stream ids come from Redis' clock,
//     which must not go backwards across a restart.
//   - Every XREAD blocks for BlockTimeout at most (go-redis sets the socket
//     deadline of a blocking read to the block time plus 10 s, whatever
//     ReadTimeout is) and holds a pool connection meanwhile: a node holds
//     up to 1+TopicBuckets connections in blocking reads. New logs a
//     warning when the pool is smaller than TopicBuckets+8.
//   - Once Close returns, the Receiver gets no new call; a Deliver under
//     way (a slow hook) may still finish.
//
// Import direction: backends/redis imports package backends and go-redis
// only; it never imports the engine, an adapter or a protocol.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
)

// Config configures a Backend. Zero fields take their defaults.
type Config struct {
	// Client is the Redis client: a *goredis.Client (single server,
	// Sentinel failover) or a *goredis.ClusterClient. Required. The
	// Backend never closes it.
	Client goredis.UniversalClient
	// Prefix starts every key: 1 to 64 characters of [A-Za-z0-9_.-].
	// Default "ssebridge".
	Prefix string
	// NodeTTL is how long a node whose heartbeat stopped is still taken for
	// alive; the heartbeat runs every NodeTTL/3. Default 15 s.
	NodeTTL time.Duration
	// SessionTTL is how long a session record outlives its owner's last
	// refresh (owners refresh every NodeTTL/3). Default 2 min.
	SessionTTL time.Duration
	// HistoryLength is the number of publications kept per topic
	// (approximately: XADD MAXLEN ~). Default 1000.
	HistoryLength int
	// HistoryAge is how long publications are kept (approximately: MINID ~
	// on Redis' clock, applied when the topic is published to); a topic
	// without publications nor subscribed nodes for HistoryAge+NodeTTL
	// disappears. Keep it above SessionTTL. Default 5 min.
	HistoryAge time.Duration
	// MarkLogLength is the number of marks kept per node (approximately).
	// A claim with a cursor older than the log fails with ErrGap: a client
	// away for more than about this many of its node's broadcasts (all
	// topics of the node, and the replays of Join) gets a new session
	// instead of resuming. A claim reads the log from the cursor's mark
	// to the first mark of each of the session's topics, in one script that
	// holds Redis meanwhile (about 1 µs per entry): the longer the log, the
	// longer the worst claim (a topic whose next mark is the log's last).
	// Default 20000 (about 20 ms).
	MarkLogLength int
	// InboxLength is the number of unread messages in a node's inbox at
	// which Route fails with an error wrapping ErrUnavailable (the caller
	// answers 503). Unread messages are never trimmed away. Default 10000.
	InboxLength int
	// TopicBuckets is the number of buckets topics hash into (FNV-1a of the
	// name); each bucket is one Redis Cluster slot and, on a node with
	// subscriptions in it, one reader loop. Every node using the same
	// Prefix must use the same TopicBuckets: a topic's key depends on it.
	// Default 16.
	TopicBuckets int
	// BlockTimeout bounds every blocking XREAD; loops check whether their
	// node was closed between reads. Default 2 s.
	BlockTimeout time.Duration
	// Logger receives warnings about the configuration and information
	// about recoveries. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultPrefix        = "ssebridge"
	DefaultNodeTTL       = 15 * time.Second
	DefaultSessionTTL    = 2 * time.Minute
	DefaultHistoryLength = 1000
	DefaultHistoryAge    = 5 * time.Minute
	DefaultMarkLogLength = 20000
	DefaultInboxLength   = 10000
	DefaultTopicBuckets  = 16
	DefaultBlockTimeout  = 2 * time.Second
)

// Backend is a backends.Backend on Redis. One Backend can attach many
// nodes. Its methods are safe for concurrent use.
type Backend struct {
	client  goredis.UniversalClient
	cfg     Config
	log     *slog.Logger
	buckets []string // "P:{t<k>}:", per bucket

	queueLimit int // maxQueued; tests lower it
	queueBytes int // maxQueuedBytes; tests lower it

	mu          sync.Mutex
	nodes       map[string]*node
	closed      bool
	poolChecked int // the number of nodes the pool was last checked for
}

// New returns a Backend for cfg, after checking it. It does not contact
// Redis (Attach does).
func New(cfg Config) (*Backend, error) {
	switch cfg.Client.(type) {
	case *goredis.Client, *goredis.ClusterClient:
	case nil:
		return nil, errors.New("redis backend: Config.Client is nil")
	default:
		return nil, fmt.Errorf("redis backend: Config.Client is a %T; want *redis.Client or *redis.ClusterClient", cfg.Client)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !validPrefix(cfg.Prefix) {
		return nil, fmt.Errorf("redis backend: Config.Prefix %q: want 1 to 64 characters of [A-Za-z0-9_.-]", cfg.Prefix)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
		min  time.Duration
	}{
		{"NodeTTL", &cfg.NodeTTL, DefaultNodeTTL, 30 * time.Millisecond},
		{"SessionTTL", &cfg.SessionTTL, DefaultSessionTTL, time.Millisecond},
		{"HistoryAge", &cfg.HistoryAge, DefaultHistoryAge, time.Millisecond},
		{"BlockTimeout", &cfg.BlockTimeout, DefaultBlockTimeout, time.Millisecond},
	}
	for _, d := range durations {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < d.min {
			return nil, fmt.Errorf("redis backend: Config.%s %v: want at least %v", d.name, *d.v, d.min)
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
		max  int
	}{
		{"HistoryLength", &cfg.HistoryLength, DefaultHistoryLength, 1 << 30},
		{"MarkLogLength", &cfg.MarkLogLength, DefaultMarkLogLength, 1 << 30},
		{"InboxLength", &cfg.InboxLength, DefaultInboxLength, 1 << 30},
		{"TopicBuckets", &cfg.TopicBuckets, DefaultTopicBuckets, 16384},
	}
	for _, n := range ints {
		if *n.v == 0 {
			*n.v = n.def
		}
		if *n.v < 1 || *n.v > n.max {
			return nil, fmt.Errorf("redis backend: Config.%s %d: want 1 to %d", n.name, *n.v, n.max)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Backend{
		client: cfg.Client,
		cfg:    cfg,
		log:    cfg.Logger,
		nodes:  make(map[string]*node),

		queueLimit: maxQueued,
		queueBytes: maxQueuedBytes,
	}
	b.buckets = make([]string, cfg.TopicBuckets)
	for k := range b.buckets {
		b.buckets[k] = cfg.Prefix + ":{t" + strconv.Itoa(k) + "}:"
	}
	b.checkPool(1)
	b.poolChecked = 1
	if cfg.SessionTTL > cfg.HistoryAge {
		b.log.Warn("redis backend: SessionTTL is longer than HistoryAge: a session resumed after its owner died may miss publications of topics no node subscribes to any more",
			slog.Duration("session_ttl", cfg.SessionTTL), slog.Duration("history_age", cfg.HistoryAge))
	}
	return b, nil
}

// checkPool warns when the client's pool is too small for the blocking
// reads of the attached nodes: each holds up to TopicBuckets+1 connections
// (one per bucket it reads, one for its inbox) for up to BlockTimeout at a
// time; the other commands need a few more. New checks for one node,
// Attach again for every node beyond the largest number warned about.
func (b *Backend) checkPool(nodes int) {
	want := nodes*(b.cfg.TopicBuckets+1) + 7
	var size, active int
	switch c := b.client.(type) {
	case *goredis.Client:
		size, active = c.Options().PoolSize, c.Options().MaxActiveConns
	case *goredis.ClusterClient:
		size, active = c.Options().PoolSize, c.Options().MaxActiveConns
	}
	if size > 0 && size < want {
		b.log.Warn("redis backend: the client's pool is smaller than the blocking reads of the attached nodes need; set PoolSize (per cluster node for a ClusterClient) to at least (TopicBuckets+1) per node plus 7",
			slog.Int("pool_size", size), slog.Int("nodes", nodes), slog.Int("want", want))
	}
	if active > 0 && active < want {
		b.log.Warn("redis backend: MaxActiveConns is below the blocking reads of the attached nodes; commands will wait for connections: set it to at least (TopicBuckets+1) per node plus 7, or 0",
			slog.Int("max_active_conns", active), slog.Int("nodes", nodes), slog.Int("want", want))
	}
}

// ParseURL returns a client for a Redis URL: redis://, rediss:// or
// unix:// with one host gives a *goredis.Client (goredis.ParseURL: user,
// password, database number and options such as pool_size as query
// parameters); a URL that names more hosts with addr parameters, as in
// redis://h1:6379?addr=h2:6379&addr=h3:6379, gives a *goredis.ClusterClient
// (goredis.ParseClusterURL). Without a pool_size parameter, the pool holds
// DefaultPoolSize connections (go-redis's default, 10 per CPU, can be too
// few for one node's blocking reads on a small machine). The caller owns
// the client and closes it after the Backend.
func ParseURL(rawURL string) (goredis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis backend: %w", err)
	}
	pool := func(size int) int {
		if u.Query().Has("pool_size") {
			return size
		}
		return max(size, DefaultPoolSize)
	}
	if u.Query().Has("addr") {
		opt, err := goredis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis backend: %w", err)
		}
		opt.PoolSize = pool(opt.PoolSize)
		return goredis.NewClusterClient(opt), nil
	}
	opt, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis backend: %w", err)
	}
	opt.PoolSize = pool(opt.PoolSize)
	return goredis.NewClient(opt), nil
}

// DefaultPoolSize is the pool size ParseURL gives a client whose URL sets
// none: enough for the blocking reads of two nodes with the default
// TopicBuckets, plus commands.
const DefaultPoolSize = 64

// Nodes returns the number of nodes attached and not closed.
func (b *Backend) Nodes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.nodes)
}

// Close closes the nodes still attached. It does not close the client,
// which the caller owns. Attach fails with ErrClosed afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	nodes := make([]*node, 0, len(b.nodes))
	for _, n := range b.nodes {
		nodes = append(nodes, n)
	}
	b.mu.Unlock()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// Attach joins a new node: it creates the node's keys and starts its
// heartbeat and inbox reader. It implements backends.Backend.
func (b *Backend) Attach(ctx context.Context, r backends.Receiver) (backends.Node, error) {
	if r == nil {
		return nil, errors.New("redis backend: Attach with a nil Receiver")
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("redis backend: attach: %w", backends.ErrClosed)
	}
	n := newNode(b, r)
	if _, err := n.beat(ctx); err != nil {
		return nil, wrap("attach", err)
	}
	n.start()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = n.Close()
		return nil, fmt.Errorf("redis backend: attach: %w", backends.ErrClosed)
	}
	b.nodes[n.id] = n
	count := len(b.nodes)
	check := count > b.poolChecked
	if check {
		b.poolChecked = count
	}
	b.mu.Unlock()
	if check {
		b.checkPool(count)
	}
	return n, nil
}

func (b *Backend) detach(n *node) {
	b.mu.Lock()
	delete(b.nodes, n.id)
	b.mu.Unlock()
}

// Key builders. Ids must have passed validID.

func (b *Backend) nodeKey(id, what string) string {
	return b.cfg.Prefix + ":{n." + id + "}:" + what
}

func (b *Backend) sessionKey(id string) string {
	return b.cfg.Prefix + ":{s." + id + "}"
}

func (b *Backend) bucketOf(topic string) int {
	return int(fnv1a32(topic) % uint32(len(b.buckets)))
}

func (b *Backend) topicKey(topic string) string {
	return b.buckets[b.bucketOf(topic)] + "topic:" + topic
}

// metaKey is the hash of a topic's offsets and epoch, in the slot of the
// topic's stream (the same bucket tag).
func (b *Backend) metaKey(topic string) string {
	return b.buckets[b.bucketOf(topic)] + "meta:" + topic
}

// presenceKeys returns a channel's presence hash and expiry zset, under
// one hash tag. A "}" in the channel ends the tag early, for both keys
// alike; the keys stay distinct from every other channel's and from the
// other key families ("{p." starts no other tag).
func (b *Backend) presenceKeys(channel string) []string {
	tag := b.cfg.Prefix + ":{p." + channel + "}:"
	return []string{tag + "presence", tag + "presence-exp"}
}

func (b *Backend) wakeKey(bucket int, node string) string {
	return b.buckets[bucket] + "wake:" + node
}

func ms(d time.Duration) int64 {
	return max(int64(d/time.Millisecond), 1)
}

// topicTTL is how long a topic stream outlives its last publication and
// its subscribers' last heartbeat.
func (b *Backend) topicTTL() time.Duration { return b.cfg.HistoryAge + b.cfg.NodeTTL }

// keyTTL is how long a node's inbox, log and cur outlive its last
// heartbeat, and how long a wake stream lives.
func (b *Backend) keyTTL() time.Duration { return b.cfg.NodeTTL + b.cfg.SessionTTL }
