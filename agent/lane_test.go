package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type laneTestKey struct{}

func TestLaneContext(t *testing.T) {
	t.Parallel()
	parent := context.WithoutCancel(context.WithValue(context.Background(), laneTestKey{}, "v"))
	cause := errors.New("proxy gave up")

	t.Run("values", func(t *testing.T) {
		l := newLane(parent, "req-1")
		assert.Equal(t, "v", l.Value(laneTestKey{}))
		assert.Equal(t, "req-1", l.Value(correlationKey{}))
		_, ok := l.Deadline()
		assert.False(t, ok)
		assert.NoError(t, l.Err())
		assert.Nil(t, l.cc.Load(), "no cancellable context until somebody needs one")
	})
	t.Run("cancel before Done", func(t *testing.T) {
		l := newLane(parent, "r")
		l.cancel(cause)
		assert.ErrorIs(t, l.Err(), context.Canceled)
		assert.Equal(t, cause, context.Cause(l))
		select {
		case <-l.Done():
		default:
			t.Fatal("Done not closed after cancel")
		}
		assert.Equal(t, "v", l.Value(laneTestKey{}))
	})
	t.Run("cancel wakes Done and children", func(t *testing.T) {
		l := newLane(parent, "r")
		done := l.Done()
		child, stop := context.WithCancel(l)
		defer stop()
		go l.cancel(cause)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed")
		}
		<-child.Done()
		assert.Equal(t, cause, context.Cause(child))
		assert.Equal(t, cause, context.Cause(l))
	})
	t.Run("finish", func(t *testing.T) {
		l := newLane(parent, "r")
		l.finish()
		assert.ErrorIs(t, l.Err(), context.Canceled)
		assert.ErrorIs(t, context.Cause(l), context.Canceled)
		<-l.Done()
		assert.Equal(t, "v", l.Value(laneTestKey{}), "values survive the end")
		l.cancel(cause) // a late cancel changes nothing
		assert.ErrorIs(t, context.Cause(l), context.Canceled)
	})
	t.Run("finish after Done", func(t *testing.T) {
		l := newLane(parent, "r")
		done := l.Done()
		l.finish()
		<-done
		require.ErrorIs(t, l.Err(), context.Canceled)
	})
}
