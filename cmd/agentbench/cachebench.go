package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/cache"
)

// The decision cache's shared store: RedisStore hits against a
// redis-server this run starts on a Unix socket, reported apart from the
// pool's rows (a fleet's proxies find each other's decisions there after
// a miss in their in-process layer).
const (
	tRedisHit = "redis-hit"
	// payloadDecision is a stored decision: an allow with one header
	// mutation, as the example WAF answers.
	payloadDecision = "decision"
	// redisMissing is the note of the Redis rows without redis-server
	// (scripts/setup installs it).
	redisMissing = "skipped: redis-server not found"
)

// redisServer is the redis-server of a run.
type redisServer struct {
	sock string
	cmd  *exec.Cmd
}

// startRedis starts redis-server for the Redis rows, or leaves e.redis
// nil when it is not installed.
func (e *env) startRedis(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		e.logf("redis rows: %s", redisMissing)
		return nil
	}
	r := &redisServer{sock: filepath.Join(e.dir, "redis.sock")}
	r.cmd = exec.Command(bin, "--port", "0", "--unixsocket", r.sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", e.dir)
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	e.closers = append(e.closers, func() {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	})
	err = waitFor(ctx, "redis-server's socket", func() bool {
		_, err := os.Stat(r.sock)
		return err == nil
	})
	if err != nil {
		return err
	}
	e.redis = r
	return nil
}

// skipped says why sc is not run, "" when it is.
func (e *env) skipped(sc scenario) string {
	if sc.Transport == tRedisHit && e.redis == nil {
		return redisMissing
	}
	return ""
}

// openRedisHit stores one decision through a RedisStore over sc.Conns
// connections and makes each worker look it up.
func (e *env) openRedisHit(ctx context.Context, sc scenario) (*target, error) {
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: e.redis.sock,
		PoolSize: sc.Conns, MinIdleConns: sc.Conns, MaxRetries: -1})
	store := cache.NewRedisStore(rdb, "agentbench:", time.Second, time.Now)
	key := cache.Key(sha256.Sum256([]byte(sc.name())))
	now := time.Now()
	entry := &cache.Entry{Response: agent.AllowSetRequestHeader("x-waf", "pass"),
		Expires: now.Add(time.Hour), StaleUntil: now.Add(time.Hour)}
	if err := store.Set(ctx, agentID, key, entry); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	t := &target{pid: e.redis.cmd.Process.Pid, close: func() { _ = rdb.Close() }}
	for range sc.Conns * sc.InFlight {
		t.workers = append(t.workers, func(ctx context.Context) error {
			got, err := store.Get(ctx, agentID, key)
			if err == nil && got == nil {
				err = errors.New("redis-hit: the decision is not in redis")
			}
			return err
		})
	}
	return t, nil
}
