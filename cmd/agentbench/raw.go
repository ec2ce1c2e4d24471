package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
)

// The raw-frames baseline is the physical limit of the framing agentwire
// uses on Unix sockets: [u32 length][u8 type][payload], the payload's first
// 8 bytes an id that the server copies into a fixed 40-byte reply. No
// protobuf, no session: one batching writer and one reader per connection
// on the client, one loop per connection on the server that answers every
// frame it has and writes the answers in one system call.

const (
	rawHeader    = 5 // length + type
	rawReplySize = 40
	rawReadBuf   = 64 << 10
)

// rawFrame builds a request frame of size bytes in all (at least 13)
// carrying id.
func rawFrame(size int, id uint64) []byte {
	size = max(size, rawHeader+8)
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(size-4))
	b[4] = 0x10
	binary.BigEndian.PutUint64(b[5:], id)
	for i := 13; i < size; i++ {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// serveRaw answers raw frames on every connection ln accepts until ln is
// closed.
func serveRaw(ln net.Listener) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveRawConn(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
	mu.Lock()
	for c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	wg.Wait()
}

func serveRawConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, rawReadBuf)
	out := make([]byte, 0, rawReadBuf)
	var reply [rawReplySize]byte
	binary.BigEndian.PutUint32(reply[:], rawReplySize-4)
	reply[4] = 0x20
	var scratch [8]byte
	for {
		hdr, err := br.Peek(rawHeader)
		if err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr))
		if n < 9 {
			return
		}
		total := 4 + n
		if total <= br.Size() {
			frame, err := br.Peek(total)
			if err != nil {
				return
			}
			copy(reply[5:13], frame[5:13])
			_, _ = br.Discard(total)
		} else {
			_, _ = br.Discard(rawHeader)
			if _, err := io.ReadFull(br, scratch[:]); err != nil {
				return
			}
			copy(reply[5:13], scratch[:])
			if _, err := br.Discard(n - 9); err != nil {
				return
			}
		}
		out = append(out, reply[:]...)
		// Write what we have before any read that would block.
		if !rawFrameBuffered(br) {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

// rawFrameBuffered reports whether br holds a complete frame already.
func rawFrameBuffered(br *bufio.Reader) bool {
	k := br.Buffered()
	if k < 4 {
		return false
	}
	hdr, _ := br.Peek(4)
	return k >= 4+int(binary.BigEndian.Uint32(hdr))
}

// rawClient is one raw-frames connection with pipelining: any number of
// slots, each with at most one frame in flight.
type rawClient struct {
	*slots
	nc   net.Conn
	wake chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex // mu guards the following
	pending []byte
	spare   []byte
}

func dialRaw(ctx context.Context, path string, n int) (*rawClient, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	c := &rawClient{slots: newSlots(n), nc: nc, wake: make(chan struct{}, 1)}
	c.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	return c, nil
}

// end fails the round trips with err and closes the connection.
func (c *rawClient) end(err error) {
	c.fail(err)
	_ = c.nc.Close()
}

func (c *rawClient) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		// Let the senders that are runnable queue their frames first: one
		// system call for all of them (as internal/wire.FrameWriter does).
		runtime.Gosched()
		c.mu.Lock()
		out := c.pending
		c.pending = c.spare[:0]
		c.spare = nil
		c.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		if _, err := c.nc.Write(out); err != nil {
			c.end(err)
			return
		}
		c.mu.Lock()
		c.spare = out[:0]
		c.mu.Unlock()
	}
}

func (c *rawClient) readLoop() {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.nc, rawReadBuf)
	for {
		hdr, err := br.Peek(rawHeader + 8)
		if err != nil {
			c.end(err)
			return
		}
		n := int(binary.BigEndian.Uint32(hdr))
		id := binary.BigEndian.Uint64(hdr[rawHeader:])
		if _, err := br.Discard(4 + n); err != nil {
			c.end(err)
			return
		}
		if !c.signal(id) {
			c.end(errors.New("raw: reply for a slot with none in flight"))
			return
		}
	}
}

// roundTrip returns the round trip of slot with a request of size bytes.
func (c *rawClient) roundTrip(slot, size int) roundTrip {
	frame := rawFrame(size, uint64(slot))
	return func(ctx context.Context) error {
		select {
		case <-c.done:
			return c.err
		default:
		}
		c.mu.Lock()
		wasEmpty := len(c.pending) == 0
		c.pending = append(c.pending, frame...)
		c.mu.Unlock()
		if wasEmpty {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		return c.wait(ctx, slot)
	}
}

func (c *rawClient) close() {
	c.end(errors.New("raw: closed"))
	c.wg.Wait()
}
