package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// reverseSetup is the proxy side of reverse connections: a listener on a
// Unix socket that keeps the connections the agent process dials in.
type reverseSetup struct {
	l *transport.ReverseListener

	mu sync.Mutex // mu guards conns
	// conns are the admitted connections, oldest first.
	conns []transport.Conn
}

func newReverseSetup(path string) (*reverseSetup, error) {
	r := &reverseSetup{}
	l, err := transport.NewReverseListener(
		transport.WithoutAuth(), // a socket in the bench's private directory
		transport.WithConnOptions(transport.WithProxyID("agentbench", "0")),
		transport.WithCloseConnsOnClose(),
		transport.WithAdmitHandler(func(_ string, c transport.Conn, _ *agentv2.RegistrationRequest) {
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
		}),
	)
	if err != nil {
		return nil, err
	}
	if _, err := l.ListenUnix(path); err != nil {
		_ = l.Close(context.Background())
		return nil, err
	}
	r.l = l
	return r, nil
}

// take waits until n live connections are registered and returns them.
func (r *reverseSetup) take(ctx context.Context, n int) ([]transport.Conn, error) {
	var live []transport.Conn
	err := waitFor(ctx, fmt.Sprintf("%d reverse connections", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.conns = slices.DeleteFunc(r.conns, func(c transport.Conn) bool { return c.Err() != nil })
		if len(r.conns) < n {
			return false
		}
		live = slices.Clone(r.conns[:n])
		return true
	})
	return live, err
}

// forget drops c from the kept connections: someone else owns it now.
func (r *reverseSetup) forget(c transport.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns = slices.DeleteFunc(r.conns, func(x transport.Conn) bool { return x == c })
}

func (r *reverseSetup) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.l.Close(ctx)
}
