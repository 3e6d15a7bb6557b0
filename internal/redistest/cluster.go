package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// Cluster node timeouts, in ms. Nodes gossip more often with a short
// timeout, so they are started with joinNodeTimeout, which lets redis-cli
// find the cluster joined at its first check, then set to nodeTimeout, long
// enough that a node busy for a moment is not failed over.
const (
	joinNodeTimeout = 500
	nodeTimeout     = 2000
)

// ClusterOptions configures a private cluster started by NewCluster.
type ClusterOptions struct {
	// Masters is the number of masters; zero means 3, the minimum that
	// redis-cli accepts.
	Masters int
	// ReplicasPerMaster is the number of replicas of each master.
	ReplicasPerMaster int
	// Args are extra redis-server arguments for every node. Nodes run with
	// cluster-node-timeout 2000 (a killed master's replica takes over in
	// about 4 s); pass "--cluster-node-timeout", "500" for faster failovers.
	Args []string
}

// ClusterServers is a Redis Cluster made of redis-server processes started
// by the harness. Nodes are plain [Server]s: a fault test may stop, kill and
// restart any of them (a restarted node keeps its cluster identity, stored
// in its data dir).
type ClusterServers struct {
	nodes  []*Server
	timing string // how long each step of the start took
}

// NewCluster starts a private Redis Cluster for t (redis-cli --cluster
// create) and waits until it is healthy (see [ClusterServers.WaitHealthy]).
// Its nodes are killed and their data dirs removed at cleanup.
func NewCluster(t testing.TB, opts ClusterOptions) *ClusterServers {
	t.Helper()
	skipWithoutServer(t)
	c, err := newCluster(context.Background(), "cluster", opts)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.destroy(); err != nil {
			t.Errorf("redistest: %v", err)
		}
	})
	return c
}

// newCluster starts the nodes, joins them into a cluster and waits until
// it is healthy.
func newCluster(ctx context.Context, name string, opts ClusterOptions) (*ClusterServers, error) {
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.Masters < 3 || opts.ReplicasPerMaster < 0 {
		return nil, fmt.Errorf("redistest: a cluster needs at least 3 masters and no negative replica count, got %+v", opts)
	}
	if _, err := redisServerBin(); err != nil {
		return nil, err
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli not found: install it (apt-get install -y redis-tools) or set REDIS_CLUSTER_ADDRS")
	}

	begin := time.Now()
	// A timeout given in opts.Args is used throughout.
	ownTimeout := !slices.Contains(opts.Args, "--cluster-node-timeout")
	n := opts.Masters * (1 + opts.ReplicasPerMaster)
	c := &ClusterServers{nodes: make([]*Server, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cfg := serverConfig{name: name, cluster: true, nodeTimeout: nodeTimeout, args: opts.Args}
			if ownTimeout {
				cfg.nodeTimeout = joinNodeTimeout
			}
			c.nodes[i], errs[i] = newServer(ctx, cfg)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, c.destroy())
	}

	started := time.Now()
	if err := c.create(ctx, cli, opts.ReplicasPerMaster); err != nil {
		return nil, errors.Join(err, c.destroy())
	}
	created := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitHealthy(wctx); err != nil {
		return nil, errors.Join(err, c.destroy())
	}
	if ownTimeout {
		if err := c.setNodeTimeout(ctx, nodeTimeout); err != nil {
			return nil, errors.Join(err, c.destroy())
		}
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	c.timing = fmt.Sprintf("nodes %v, redis-cli %v, healthy %v",
		ms(started.Sub(begin)), ms(created.Sub(started)), ms(time.Since(created)))
	return c, nil
}

// create runs redis-cli --cluster create over the nodes (masters first,
// replicas assigned by redis-cli).
func (c *ClusterServers) create(ctx context.Context, cli string, replicas int) error {
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	logPath := filepath.Join(c.nodes[0].dir, "cluster-create.log")
	out, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command(cli, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	p, err := startProcess(cmd) // from the forker, so it dies with us too
	_ = out.Close()
	if err != nil {
		return fmt.Errorf("redistest: start redis-cli: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	if p.err != nil || ctx.Err() != nil {
		data, _ := os.ReadFile(logPath)
		return fmt.Errorf("redistest: redis-cli --cluster create failed (%v): %s", errors.Join(p.err, ctx.Err()), strings.TrimSpace(string(data)))
	}
	return nil
}

// setNodeTimeout sets cluster-node-timeout on every node, now and for its
// restarts.
func (c *ClusterServers) setNodeTimeout(ctx context.Context, ms int) error {
	v := strconv.Itoa(ms)
	for _, s := range c.nodes {
		if _, err := rawDo(ctx, s.Addr(), "CONFIG", "SET", "cluster-node-timeout", v); err != nil {
			return fmt.Errorf("redistest: %s: CONFIG SET cluster-node-timeout: %w", s.Addr(), err)
		}
		if i := slices.Index(s.args, "--cluster-node-timeout"); i >= 0 && i+1 < len(s.args) {
			s.args[i+1] = v
		}
	}
	return nil
}

// Nodes returns every node, masters and replicas, in start order.
func (c *ClusterServers) Nodes() []*Server { return slices.Clone(c.nodes) }

// Addrs returns the address of every node; any of them is a seed.
func (c *ClusterServers) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Client returns a new cluster client seeded with every node, closed at
// cleanup.
func (c *ClusterServers) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// node returns the node listening on addr, or nil.
func (c *ClusterServers) node(addr string) *Server {
	for _, s := range c.nodes {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// MasterForSlot returns the node that serves slot as master, as the first
// running node that answers CLUSTER NODES sees it.
func (c *ClusterServers) MasterForSlot(ctx context.Context, slot int) (*Server, error) {
	if slot < 0 || slot >= clusterSlots {
		return nil, fmt.Errorf("redistest: slot %d out of range", slot)
	}
	var errs []error
	for _, s := range c.nodes {
		if !s.Running() {
			continue
		}
		entries, err := clusterNodes(ctx, s.Addr())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if e.isMaster() && !e.failing() && e.serves(slot) {
				if n := c.node(e.addr); n != nil {
					return n, nil
				}
				return nil, fmt.Errorf("redistest: slot %d is served by %s, not a node of this cluster", slot, e.addr)
			}
		}
		return nil, fmt.Errorf("redistest: slot %d is not served (as seen by %s)", slot, s.Addr())
	}
	return nil, errors.Join(append(errs, errors.New("redistest: no running cluster node answered"))...)
}

// WaitHealthy waits until every running node reports cluster_state:ok with
// all 16384 slots assigned and ok, sees every other running node as
// connected and not failing, and agrees with the others on which master
// serves which slots; and until every running replica's link to its master
// is up. Stopped nodes are left out, so it also waits for a failover after
// a master was killed.
func (c *ClusterServers) WaitHealthy(ctx context.Context) error {
	var last error
	for {
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: cluster not healthy: %w", last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// healthy checks once what WaitHealthy waits for.
func (c *ClusterServers) healthy(ctx context.Context) error {
	var running []*Server
	for _, s := range c.nodes {
		if s.Running() {
			running = append(running, s)
		}
	}
	if len(running) == 0 {
		return errors.New("no running node")
	}
	ids := make(map[string]bool)
	for _, s := range running {
		id, err := rawDo(ctx, s.Addr(), "CLUSTER", "MYID")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER MYID: %w", s.Addr(), err)
		}
		ids[id] = true
	}
	var view string
	for _, s := range running {
		info, err := rawDo(ctx, s.Addr(), "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", s.Addr(), err)
		}
		if v := infoField(info, "cluster_state"); v != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", s.Addr(), v)
		}
		for _, f := range []string{"cluster_slots_assigned", "cluster_slots_ok"} {
			if v := infoField(info, f); v != strconv.Itoa(clusterSlots) {
				return fmt.Errorf("%s: %s:%s", s.Addr(), f, v)
			}
		}
		entries, err := clusterNodes(ctx, s.Addr())
		if err != nil {
			return err
		}
		seen := 0
		var slotView []string
		for _, e := range entries {
			if ids[e.id] {
				seen++
				if e.failing() || e.has("handshake") || e.has("noaddr") || (!e.has("myself") && e.link != "connected") {
					return fmt.Errorf("%s sees %s as %s/%s", s.Addr(), e.addr, strings.Join(e.flags, ","), e.link)
				}
			}
			if e.isMaster() && !e.failing() && len(e.slots) > 0 {
				slotView = append(slotView, e.id+" "+e.slotText)
			}
		}
		if seen != len(ids) {
			return fmt.Errorf("%s knows %d of the %d running nodes", s.Addr(), seen, len(ids))
		}
		slices.Sort(slotView)
		v := strings.Join(slotView, "\n")
		if view == "" {
			view = v
		} else if v != view {
			return fmt.Errorf("nodes disagree on the slot map")
		}

		repl, err := rawDo(ctx, s.Addr(), "INFO", "replication")
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", s.Addr(), err)
		}
		if infoField(repl, "role") == "slave" && infoField(repl, "master_link_status") != "up" {
			return fmt.Errorf("%s: replica link %s", s.Addr(), infoField(repl, "master_link_status"))
		}
	}
	return nil
}

// destroy kills every node and removes their data dirs.
func (c *ClusterServers) destroy() error {
	var errs []error
	for _, s := range c.nodes {
		if s != nil {
			errs = append(errs, s.destroy())
		}
	}
	return errors.Join(errs...)
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id       string
	addr     string // ip:port
	flags    []string
	master   string // master id, "-" for a master
	link     string // connected or disconnected
	slots    [][2]int
	slotText string
}

func (e clusterNode) has(flag string) bool { return slices.Contains(e.flags, flag) }
func (e clusterNode) isMaster() bool       { return e.has("master") }
func (e clusterNode) failing() bool        { return e.has("fail") || e.has("fail?") }

func (e clusterNode) serves(slot int) bool {
	for _, r := range e.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// clusterNodes asks addr for CLUSTER NODES and parses the reply.
func clusterNodes(ctx context.Context, addr string) ([]clusterNode, error) {
	text, err := rawDo(ctx, addr, "CLUSTER", "NODES")
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %w", addr, err)
	}
	return parseClusterNodes(text)
}

// parseClusterNodes parses a CLUSTER NODES reply:
// <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
func parseClusterNodes(text string) ([]clusterNode, error) {
	var out []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("redistest: bad CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		e := clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3], link: f[7]}
		var texts []string
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") { // a slot being imported or migrated
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("redistest: bad slot %q in CLUSTER NODES", s)
			}
			e.slots = append(e.slots, [2]int{a, b})
			texts = append(texts, s)
		}
		e.slotText = strings.Join(texts, " ")
		out = append(out, e)
	}
	return out, nil
}
