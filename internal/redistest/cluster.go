package redistest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterHint is the message of a test skipped (or failed, in CI) for lack
// of redis-server in StartCluster.
const clusterHint = "redis-server not found: install it (apt-get install redis-server); StartCluster needs it (REDIS_URL cannot give a cluster)"

// clusterTimeout bounds the wait for a new cluster to be consistent.
const clusterTimeout = 20 * time.Second

// clusterSlots is the number of hash slots of Redis Cluster.
const clusterSlots = 16384

// Cluster is a private Redis Cluster for one test: three masters, no
// replicas, each a redis-server process on a free loopback port. Its
// methods are safe for concurrent use; those that take a testing.TB may
// call t.Fatal and so must be called from the test's goroutine.
type Cluster struct {
	nodes  []*Server
	ranges [][2]int // ranges[i] is the slot range of nodes[i]
	prefix string
	admin  *redis.ClusterClient // for Keys
}

// StartCluster starts a private Redis Cluster for the test: 3 masters, no
// replicas, each on a free port of 127.0.0.1 with cluster-enabled yes and
// cluster-node-timeout 5000, the 16384 slots split in 3 ranges (CLUSTER
// ADDSLOTSRANGE) and the nodes joined with CLUSTER MEET. It returns once
// CLUSTER INFO says cluster_state:ok on every node and every node's
// CLUSTER SLOTS shows all 3 masters with their slots, so that a go-redis
// ClusterClient sees a consistent cluster. The servers are killed in
// t.Cleanup.
//
// Without redis-server the test is skipped, or fails when CI is "true",
// whether or not REDIS_URL is set (see the package documentation).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := lookServer()
	if bin == "" {
		missingTool(t, clusterHint)
	}
	extra := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes-{port}.conf",
		"--cluster-node-timeout", "5000",
		"--cluster-announce-ip", "127.0.0.1",
	}
	c := &Cluster{prefix: newPrefix()}
	for range 3 {
		c.nodes = append(c.nodes, startPrivate(t, bin, extra, true))
	}
	per := clusterSlots / len(c.nodes)
	for i := range c.nodes {
		hi := (i+1)*per - 1
		if i == len(c.nodes)-1 {
			hi = clusterSlots - 1
		}
		c.ranges = append(c.ranges, [2]int{i * per, hi})
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		defer func() { _ = clients[i].Close() }()
	}
	for i, cl := range clients {
		lo, hi := c.ranges[i][0], c.ranges[i][1]
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			// Redis before 7.0 has no ADDSLOTSRANGE: list the slots.
			if err2 := cl.ClusterAddSlotsRange(ctx, lo, hi).Err(); err2 != nil {
				c.fail(t, clients, "CLUSTER ADDSLOTSRANGE %d %d on %s: %v (ADDSLOTS: %v)", lo, hi, c.nodes[i].Addr(), err, err2)
			}
		}
	}
	// Every node meets every other: the cluster then does not wait for
	// gossip to spread the news.
	for i, cl := range clients {
		for j, n := range c.nodes {
			if i == j {
				continue
			}
			if err := cl.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(n.port)).Err(); err != nil {
				c.fail(t, clients, "CLUSTER MEET from %s to %s: %v", c.nodes[i].Addr(), n.Addr(), err)
			}
		}
	}
	for {
		problem := c.check(ctx, clients)
		if problem == "" {
			break
		}
		if ctx.Err() != nil {
			c.fail(t, clients, "cluster not ready within %v: %s", clusterTimeout, problem)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c.admin = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = c.admin.Close() })
	return c
}

// check returns "" if every node has cluster_state:ok and sees exactly the
// 3 masters with their slot ranges, or else what is not so yet.
func (c *Cluster) check(ctx context.Context, clients []*redis.Client) string {
	want := map[[2]int]string{}
	for i, n := range c.nodes {
		want[c.ranges[i]] = n.Addr()
	}
	for i, cl := range clients {
		addr := c.nodes[i].Addr()
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Sprintf("CLUSTER INFO on %s: %v", addr, err)
		}
		for _, field := range []string{
			"cluster_state:ok",
			"cluster_slots_assigned:" + strconv.Itoa(clusterSlots),
			"cluster_known_nodes:" + strconv.Itoa(len(c.nodes)),
			"cluster_size:" + strconv.Itoa(len(c.nodes)),
		} {
			if !hasLine(info, field) {
				return fmt.Sprintf("CLUSTER INFO on %s lacks %s", addr, field)
			}
		}
		slots, err := cl.ClusterSlots(ctx).Result()
		if err != nil {
			return fmt.Sprintf("CLUSTER SLOTS on %s: %v", addr, err)
		}
		got := map[[2]int]string{}
		for _, s := range slots {
			if len(s.Nodes) != 1 {
				return fmt.Sprintf("CLUSTER SLOTS on %s: %d-%d served by %d nodes", addr, s.Start, s.End, len(s.Nodes))
			}
			got[[2]int{s.Start, s.End}] = s.Nodes[0].Addr
		}
		if !maps.Equal(got, want) {
			return fmt.Sprintf("CLUSTER SLOTS on %s: %v, want %v", addr, got, want)
		}
	}
	return ""
}

// fail fails the test with the message, each node's CLUSTER INFO and
// CLUSTER NODES, and the tail of its output.
func (c *Cluster) fail(t testing.TB, clients []*redis.Client, format string, args ...any) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "redistest: "+format, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for i, n := range c.nodes {
		info, err := clients[i].ClusterInfo(ctx).Result()
		if err != nil {
			info = err.Error()
		}
		nodes, err := clients[i].ClusterNodes(ctx).Result()
		if err != nil {
			nodes = err.Error()
		}
		var out string
		n.mu.Lock()
		if n.proc != nil {
			out = n.proc.out.String()
		}
		n.mu.Unlock()
		fmt.Fprintf(&b, "\n--- node %s (slots %d-%d)\nCLUSTER INFO:\n%s\nCLUSTER NODES:\n%s\noutput:\n%s",
			n.Addr(), c.ranges[i][0], c.ranges[i][1], strings.TrimSpace(info), strings.TrimSpace(nodes), tail(out, 20))
	}
	t.Fatal(b.String())
}

// hasLine reports whether text has a line equal to line (ignoring "\r").
func hasLine(text, line string) bool {
	for l := range strings.Lines(text) {
		if strings.TrimRight(l, "\r\n") == line {
			return true
		}
	}
	return false
}

// Addrs returns the addresses of the 3 masters, "127.0.0.1:port", in the
// order of their slot ranges (0-5460, 5461-10921, 10922-16383).
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Prefix returns the key prefix of this test, as Server.Prefix: "ssbt" and
// 8 random characters from a-z and 2-7, with no '{', '}' or ':', so that a
// hash tag after it ("<prefix>{tag}rest") still picks the slot.
func (c *Cluster) Prefix() string { return c.prefix }

// Client returns a new go-redis ClusterClient to the cluster (default
// options), closed at t's cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Keys returns every key that starts with Prefix() on any master, sorted
// (SCAN MATCH on each master, via ForEachMaster). It fails the test if a
// master does not answer.
func (c *Cluster) Keys(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var (
		mu   sync.Mutex
		keys []string
	)
	err := c.admin.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		ks, err := scanKeys(ctx, m, c.prefix)
		if err != nil {
			return fmt.Errorf("SCAN %s: %w", m.Options().Addr, err)
		}
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: cluster keys: %v", err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
