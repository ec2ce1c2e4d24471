package cache_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/cache"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// redisServer is a real redis-server on a Unix socket, started and
// stopped by the test.
type redisServer struct {
	t    *testing.T
	sock string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is installed by ./scripts/setup")
	dir, err := os.MkdirTemp("", "rd")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	r := &redisServer{t: t, sock: filepath.Join(dir, "r.sock")}
	r.start(bin)
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) start(bin string) {
	r.t.Helper()
	r.cmd = exec.Command(bin, "--port", "0", "--unixsocket", r.sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", filepath.Dir(r.sock))
	require.NoError(r.t, r.cmd.Start())
	require.Eventually(r.t, func() bool {
		_, err := os.Stat(r.sock)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "redis-server did not create its socket")
}

func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
	_ = os.Remove(r.sock)
}

func (r *redisServer) restart() {
	r.stop()
	bin, _ := exec.LookPath("redis-server")
	r.start(bin)
}

func (r *redisServer) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: r.sock, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// proxyWithRedis is one proxy of a fleet: a pool whose cache shares rd.
func proxyWithRedis(t *testing.T, h agent.Handler, rd *redisServer, clock *fakeClock) *fixture {
	t.Helper()
	s := cache.NewRedisStore(rd.client(t), "test:", time.Second, clock.Now)
	f := newFixture(t, h, cache.WithStore(s), cache.WithMaxEntries(1000), cache.WithClock(clock.Now))
	f.clock = clock
	return f
}

// TestRedisFleet: a decision one proxy cached is found by another, a purge
// through either reaches both, and a Redis outage and restart never fail a
// request.
func TestRedisFleet(t *testing.T) {
	t.Parallel()
	rd := startRedis(t)
	pol := &policy{decide: func(ev *agentv2.RequestHeadersEvent) *agentv2.AgentResponse {
		return agent.CacheFor(agent.Block(403, "no"), time.Minute, agent.ByPath(), agent.CacheTags(strings.TrimPrefix(ev.GetUri(), "/")))
	}}
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)} // the fixtures' clocks start there too
	a := proxyWithRedis(t, pol, rd, clock)
	b := proxyWithRedis(t, pol, rd, clock)

	resp, err := a.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	assert.Equal(t, uint32(403), resp.GetBlock().GetStatus())
	resp, err = b.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	assert.Equal(t, uint32(403), resp.GetBlock().GetStatus())
	assert.Equal(t, int64(1), pol.calls.Load(), "the second proxy found the first one's decision in Redis")
	assert.Equal(t, uint64(1), b.ic.Stats()["waf"].Hits)

	// A purge bumps the tag's generation in Redis: a proxy that never saw
	// /x (no local copy) misses it afterwards. Proxies with a local copy
	// drop it when the purge reaches them: the agent sends its purge to
	// every proxy (agent.Server.PurgeCache).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, a.ic.Purge(ctx, "waf", "x"))
	c := proxyWithRedis(t, pol, rd, clock)
	_, err = c.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	assert.Equal(t, int64(2), pol.calls.Load(), "purged in Redis: asked again")
	_, err = b.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	assert.Equal(t, int64(2), pol.calls.Load(), "b still has its local copy until the purge reaches it")
	require.NoError(t, b.ic.Purge(ctx, "waf", "x"))
	_, err = b.send(t, headersEvent("GET", "/x"))
	require.NoError(t, err)
	assert.Equal(t, int64(3), pol.calls.Load(), "purged at b (locally and again in Redis): asked again")

	// Redis goes away: requests are still answered, from the local layer
	// or the agent, never failed.
	rd.stop()
	for _, p := range []*fixture{a, b} {
		for _, u := range []string{"/x", "/y", "/z"} {
			_, err := p.send(t, headersEvent("GET", u))
			require.NoError(t, err, "a Redis outage never fails a request")
		}
	}
	assert.NotZero(t, a.ic.Stats()["waf"].StoreErrors+b.ic.Stats()["waf"].StoreErrors, "the outage is counted")

	// Redis comes back (empty): after its one-second rest the store uses it again.
	rd.restart()
	time.Sleep(1100 * time.Millisecond)
	calls := pol.calls.Load()
	_, err = a.send(t, headersEvent("GET", "/w"))
	require.NoError(t, err)
	_, err = b.send(t, headersEvent("GET", "/w"))
	require.NoError(t, err)
	assert.Equal(t, calls+1, pol.calls.Load(), "shared again after the restart")
}
