package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// slots pipeline round trips over one connection: slot i has at most one
// request in flight, and the reply carrying id i wakes it. Safe for
// concurrent use.
type slots struct {
	ch   []chan struct{}
	done chan struct{} // closed by fail; err says why
	once sync.Once
	err  error
}

func newSlots(n int) *slots {
	s := &slots{ch: make([]chan struct{}, n), done: make(chan struct{})}
	for i := range s.ch {
		s.ch[i] = make(chan struct{}, 1)
	}
	return s
}

// fail ends every wait, now and later, with err; the first call wins.
func (s *slots) fail(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// signal wakes the round trip waiting on slot id; false if id is out of
// range or already signalled (a reply nobody waits for).
func (s *slots) signal(id uint64) bool {
	if id >= uint64(len(s.ch)) {
		return false
	}
	select {
	case s.ch[id] <- struct{}{}:
		return true
	default:
		return false
	}
}

// wait blocks until slot's reply came, the connection failed or ctx ended.
func (s *slots) wait(ctx context.Context, slot int) error {
	select {
	case <-s.ch[slot]:
		return nil
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// replyID is the slot id a baseline reply carries in its first 8 bytes
// (out of range if it is shorter).
func replyID(b []byte) uint64 {
	if len(b) < 8 {
		return math.MaxUint64
	}
	return binary.BigEndian.Uint64(b)
}

// slotStream is the client side of one bare RPC bidi stream: senders take
// turns, one goroutine receives and wakes the slots.
type slotStream struct {
	*slots
	sendMu sync.Mutex
	wg     sync.WaitGroup
}

// receive runs recv on a goroutine that wg tracks, until it fails or
// returns the id of a slot nobody waits on.
func (c *slotStream) receive(what string, recv func() (uint64, error)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			id, err := recv()
			if err != nil {
				c.fail(err)
				return
			}
			if !c.signal(id) {
				c.fail(fmt.Errorf("%s: reply for a slot with none in flight", what))
				return
			}
		}
	}()
}

// trip is the round trip of slot: send under the stream's lock, then wait.
func (c *slotStream) trip(slot int, send func() error) roundTrip {
	return func(ctx context.Context) error {
		c.sendMu.Lock()
		err := send()
		c.sendMu.Unlock()
		if err != nil {
			return err
		}
		return c.wait(ctx, slot)
	}
}

// grpcStream is one ClientConn with one bidi stream, dialled with the
// windows transport.DialGRPC uses.
type grpcStream struct {
	slotStream
	cc     *grpc.ClientConn
	stream grpc.ClientStream
	cancel context.CancelFunc
}

// dialGRPCStream opens a ClientConn to addr and the stream open returns on
// it, for n slots. Call options add to the message size limits.
func dialGRPCStream(addr string, n int, open func(context.Context, *grpc.ClientConn) (grpc.ClientStream, error),
	callOpts ...grpc.CallOption) (*grpcStream, error) {
	callOpts = append([]grpc.CallOption{grpc.MaxCallRecvMsgSize(16 << 20), grpc.MaxCallSendMsgSize(16 << 20)}, callOpts...)
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(callOpts...),
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(4<<20),
	)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := open(sctx, cc)
	if err != nil {
		cancel()
		_ = cc.Close()
		return nil, err
	}
	return &grpcStream{slotStream: slotStream{slots: newSlots(n)}, cc: cc, stream: stream, cancel: cancel}, nil
}

func (c *grpcStream) close() {
	c.cancel()
	_ = c.cc.Close()
	c.wg.Wait()
}
