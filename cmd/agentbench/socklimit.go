package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// The socket-limit baseline is the raw-frames server driven as a socket
// load generator drives it: per connection one goroutine writes frames and
// one reads the replies, keeping a window of frames in flight (the
// scenario's in-flight count) with no goroutine per call. The raw-frames
// baseline pays a wake-up per exchange as agentwire's callers do; this one
// shows what the socket and the server allow without them.

// tSockLimit is the transport name of the socket-limit baseline.
const tSockLimit = "sock-limit"

// sockConn is one socket-limit connection. Its writer and reader share the
// in-flight count and the send times; nothing else.
type sockConn struct {
	nc     net.Conn
	frame  []byte // a request, its id patched in per send
	window int
	base   time.Time // send times are nanoseconds since base

	sent     []atomic.Int64 // sent[id%window]: when frame id left
	inflight atomic.Int64
	wake     chan struct{} // the reader freed room in the window
}

// openSockLimit dials sc.Conns connections to the raw-frames server at
// path and returns their drivers, each keeping sc.InFlight frames of size
// bytes in flight, and a function that closes them.
func openSockLimit(ctx context.Context, path string, sc scenario, size int) ([]driver, func(), error) {
	var conns []*sockConn
	var drivers []driver
	closeAll := func() {
		for _, c := range conns {
			_ = c.nc.Close()
		}
	}
	var d net.Dialer
	for range sc.Conns {
		nc, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s: %w", tSockLimit, err)
		}
		c := &sockConn{nc: nc, frame: rawFrame(size, 0), window: max(sc.InFlight, 1), base: time.Now(),
			wake: make(chan struct{}, 1)}
		c.sent = make([]atomic.Int64, c.window)
		conns = append(conns, c)
		drivers = append(drivers, c.drive)
	}
	return drivers, closeAll, nil
}

// clock is the time since c.base in nanoseconds (monotonic).
func (c *sockConn) clock() int64 { return int64(time.Since(c.base)) }

// drive is c's driver: it writes on the calling goroutine and reads on
// another until the phase stops, then closes the connection.
func (c *sockConn) drive(ctx context.Context, phase *atomic.Int32, t *tally) {
	readDone := make(chan struct{})
	var rerr error
	go func() {
		defer close(readDone)
		rerr = c.read(phase, t)
	}()
	werr := c.write(ctx, phase, readDone)
	_ = c.nc.Close() // ends the read of replies nobody counts any more
	<-readDone
	// An error after the stop is the close above.
	if err := cmp.Or(werr, rerr); err != nil && phase.Load() != phaseStop {
		t.fail(err)
	}
}

// write fills the window whenever the reader frees room in it, with one
// system call for all the frames that fit.
func (c *sockConn) write(ctx context.Context, phase *atomic.Int32, readDone <-chan struct{}) error {
	buf := make([]byte, 0, c.window*len(c.frame))
	var seq uint64
	for phase.Load() != phaseStop {
		free := c.window - int(c.inflight.Load())
		if free <= 0 {
			select {
			case <-c.wake:
			case <-readDone:
				return nil // the reader's error says why
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		now := c.clock()
		buf = buf[:0]
		for range free {
			buf = append(buf, c.frame...)
			binary.BigEndian.PutUint64(buf[len(buf)-len(c.frame)+rawHeader:], seq)
			c.sent[seq%uint64(c.window)].Store(now)
			seq++
		}
		// Counted before the write, so that no reply finds it lower.
		c.inflight.Add(int64(free))
		if _, err := c.nc.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// read takes the replies, which the server sends in order, and frees their
// room in the window once per batch it reads.
func (c *sockConn) read(phase *atomic.Int32, t *tally) error {
	br := bufio.NewReaderSize(c.nc, rawReadBuf)
	var next uint64
	for {
		hdr, err := br.Peek(rawHeader + 8)
		if err != nil {
			return err
		}
		now := c.clock()
		measured := phase.Load() == phaseMeasure
		var k int64
		for {
			n := int(binary.BigEndian.Uint32(hdr))
			if id := binary.BigEndian.Uint64(hdr[rawHeader:]); id != next || n < rawHeader+8-4 {
				return fmt.Errorf("%s: reply %d of %d bytes, want reply %d", tSockLimit, id, n, next)
			}
			if measured {
				t.hist.record(time.Duration(now - c.sent[next%uint64(c.window)].Load()))
				t.n++
			}
			next++
			k++
			if _, err := br.Discard(4 + n); err != nil {
				return err
			}
			if !rawFrameBuffered(br) {
				break
			}
			if hdr, err = br.Peek(rawHeader + 8); err != nil {
				return err
			}
		}
		if c.inflight.Add(-k) < 0 {
			return errors.New(tSockLimit + ": more replies than requests")
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}
