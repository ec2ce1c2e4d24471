package cache

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// RedisStore is a Store a fleet of proxies shares through Redis or Valkey:
// a decision one proxy stored is found by the others (behind each
// interceptor's in-process layer), and a purge reaches every proxy's
// entries. When Redis fails, the failure is returned (the interceptor
// counts it and carries on with its in-process layer) and Redis is left
// alone for a second before the store tries again. It is safe for
// concurrent use.
type RedisStore struct {
	rdb     redis.UniversalClient
	prefix  string
	now     func() time.Time
	timeout time.Duration
	down    atomic.Int64 // unix nanoseconds until which Redis is skipped
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a RedisStore over rdb whose keys start with
// prefix. Each Redis call is bounded by timeout; rdb stays the caller's.
func NewRedisStore(rdb redis.UniversalClient, prefix string, timeout time.Duration, now func() time.Time) *RedisStore {
	return &RedisStore{rdb: rdb, prefix: prefix, now: now, timeout: timeout}
}

// errRedisSkipped: Redis failed less than a second ago and is left alone.
var errRedisSkipped = errors.New("cache: redis unavailable, using the local layer")

func (s *RedisStore) call(ctx context.Context, f func(ctx context.Context) error) error {
	if time.Now().UnixNano() < s.down.Load() {
		return errRedisSkipped
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := f(ctx); err != nil && !errors.Is(err, redis.Nil) {
		s.down.Store(time.Now().Add(time.Second).UnixNano())
		return fmt.Errorf("cache: redis: %w", err)
	}
	return nil
}

func (s *RedisStore) entryKey(agentID string, key Key) string {
	return s.prefix + "e:" + strconv.Itoa(len(agentID)) + ":" + agentID + ":" + hex.EncodeToString(key[:])
}

// genKey names the generation of agentID's entries, or of its entries
// tagged tag.
func (s *RedisStore) genKey(agentID string, tag *string) string {
	k := s.prefix + "g:" + strconv.Itoa(len(agentID)) + ":" + agentID
	if tag != nil {
		k += ":" + *tag
	}
	return k
}

func (s *RedisStore) genKeys(agentID string, tags []string) []string {
	keys := []string{s.genKey(agentID, nil)}
	for i := range tags {
		keys = append(keys, s.genKey(agentID, &tags[i]))
	}
	return keys
}

// Get implements Store.
func (s *RedisStore) Get(ctx context.Context, agentID string, key Key) (*Entry, error) {
	var e *Entry
	err := s.call(ctx, func(ctx context.Context) error {
		pipe := s.rdb.Pipeline()
		val := pipe.Get(ctx, s.entryKey(agentID, key))
		agentGen := pipe.Get(ctx, s.genKey(agentID, nil))
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		b, err := val.Bytes()
		if err != nil {
			return err // redis.Nil: a miss
		}
		dec, gens, err := decodeEntry(b)
		if err != nil {
			return err
		}
		cur := []uint64{genOf(agentGen)}
		if len(dec.Tags) > 0 {
			vals, err := s.rdb.MGet(ctx, s.genKeys(agentID, dec.Tags)[1:]...).Result()
			if err != nil {
				return err
			}
			for _, v := range vals {
				n, _ := strconv.ParseUint(fmt.Sprint(v), 10, 64)
				cur = append(cur, n)
			}
		}
		for i := range gens {
			if gens[i] != cur[i] {
				return nil // purged
			}
		}
		e = dec
		return nil
	})
	return e, err
}

func genOf(c *redis.StringCmd) uint64 {
	n, _ := c.Uint64()
	return n
}

// Set implements Store.
func (s *RedisStore) Set(ctx context.Context, agentID string, key Key, e *Entry) error {
	ttl := e.StaleUntil.Sub(s.now())
	if ttl <= 0 {
		return nil
	}
	return s.call(ctx, func(ctx context.Context) error {
		vals, err := s.rdb.MGet(ctx, s.genKeys(agentID, e.Tags)...).Result()
		if err != nil {
			return err
		}
		gens := make([]uint64, len(vals))
		for i, v := range vals {
			if v != nil {
				gens[i], _ = strconv.ParseUint(fmt.Sprint(v), 10, 64)
			}
		}
		b, err := encodeEntry(e, gens)
		if err != nil {
			return err
		}
		return s.rdb.Set(ctx, s.entryKey(agentID, key), b, ttl).Err()
	})
}

// maxSharedScopes bounds the scopes kept per agent in Redis.
const maxSharedScopes = 8

// AddScope implements Store: a list per agent, newest first, deduplicated.
func (s *RedisStore) AddScope(ctx context.Context, agentID string, sc *agentv2.CacheScope) error {
	b, err := sc.MarshalVT()
	if err != nil {
		return err
	}
	key := s.prefix + "s:" + strconv.Itoa(len(agentID)) + ":" + agentID
	return s.call(ctx, func(ctx context.Context) error {
		pipe := s.rdb.TxPipeline()
		pipe.LRem(ctx, key, 0, b)
		pipe.LPush(ctx, key, b)
		pipe.LTrim(ctx, key, 0, maxSharedScopes-1)
		_, err := pipe.Exec(ctx)
		return err
	})
}

// Scopes implements Store.
func (s *RedisStore) Scopes(ctx context.Context, agentID string) ([]*agentv2.CacheScope, error) {
	key := s.prefix + "s:" + strconv.Itoa(len(agentID)) + ":" + agentID
	var out []*agentv2.CacheScope
	err := s.call(ctx, func(ctx context.Context) error {
		vals, err := s.rdb.LRange(ctx, key, 0, maxSharedScopes-1).Result()
		if err != nil {
			return err
		}
		for _, v := range vals {
			sc := &agentv2.CacheScope{}
			if sc.UnmarshalVT([]byte(v)) == nil {
				out = append(out, sc)
			}
		}
		return nil
	})
	return out, err
}

// Purge implements Store: by bumping generations in Redis, the entries
// of every proxy that looks them up afterwards.
func (s *RedisStore) Purge(ctx context.Context, agentID string, tags []string) error {
	return s.call(ctx, func(ctx context.Context) error {
		keys := s.genKeys(agentID, tags)
		if len(tags) > 0 {
			keys = keys[1:]
		} else {
			keys = keys[:1]
		}
		pipe := s.rdb.Pipeline()
		for _, k := range keys {
			pipe.Incr(ctx, k)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}

// entryVersion heads every encoded entry.
const entryVersion = 1

// encodeEntry writes e and the generations it was stored under:
// version, expiry and stale end (unix ms), body flag, tags, generations,
// then the response's protobuf encoding.
func encodeEntry(e *Entry, gens []uint64) ([]byte, error) {
	resp, err := e.Response.MarshalVT()
	if err != nil {
		return nil, err
	}
	b := []byte{entryVersion}
	b = binary.BigEndian.AppendUint64(b, uint64(e.Expires.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.StaleUntil.UnixMilli()))
	flag := byte(0)
	if e.BodyNotInspected {
		flag = 1
	}
	b = append(b, flag)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Tags)))
	for _, t := range e.Tags {
		b = binary.BigEndian.AppendUint16(b, uint16(len(t)))
		b = append(b, t...)
	}
	for _, g := range gens {
		b = binary.BigEndian.AppendUint64(b, g)
	}
	return append(b, resp...), nil
}

var errBadEntry = errors.New("cache: malformed entry in redis")

func decodeEntry(b []byte) (*Entry, []uint64, error) {
	if len(b) < 20 || b[0] != entryVersion {
		return nil, nil, errBadEntry
	}
	e := &Entry{
		Expires:          time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:]))),
		StaleUntil:       time.UnixMilli(int64(binary.BigEndian.Uint64(b[9:]))),
		BodyNotInspected: b[17] == 1,
	}
	n := int(binary.BigEndian.Uint16(b[18:]))
	b = b[20:]
	for range n {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			return nil, nil, errBadEntry
		}
		l := int(binary.BigEndian.Uint16(b))
		e.Tags = append(e.Tags, string(b[2:2+l]))
		b = b[2+l:]
	}
	gens := make([]uint64, n+1)
	for i := range gens {
		if len(b) < 8 {
			return nil, nil, errBadEntry
		}
		gens[i] = binary.BigEndian.Uint64(b)
		b = b[8:]
	}
	e.Response = &agentv2.AgentResponse{}
	if err := e.Response.UnmarshalVT(b); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadEntry, err)
	}
	return e, gens, nil
}
