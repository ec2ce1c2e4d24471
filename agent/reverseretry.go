package agent

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
)

// backoff is the wait after the failures-th failure in a row, the last
// refusals of them refused registrations: between half and all of
// min·2^failures capped at max, or of max for a refusal retrying soon
// cannot fix.
func (d *ReverseDialer) backoff(failures, refusals int, err error) time.Duration {
	ceiling := d.cfg.maxBackoff
	if !errors.Is(err, ErrRegistrationRejected) || retrySoon(agentwire.CodeOf(err), refusals) {
		ceiling = d.cfg.minBackoff
		for i := 0; i < failures && ceiling < d.cfg.maxBackoff; i++ {
			ceiling *= 2
		}
		ceiling = min(ceiling, d.cfg.maxBackoff)
	}
	half := ceiling / 2
	return half + time.Duration(d.cfg.rand()%uint64(ceiling-half+1))
}

// retrySoon reports refusals worth retrying like a lost connection: a
// proxy closing down (Unavailable), or a first capacity refusal (the proxy
// may not have seen a connection end yet).
func retrySoon(c agentwire.Code, refusals int) bool {
	return c == agentwire.CodeUnavailable || c == agentwire.CodeResourceExhausted && refusals <= 1
}

// refusalsStarted counts a connection starting a streak of refusals and
// logs the dialer's first: one warning per streak.
func (d *ReverseDialer) refusalsStarted(err error, retryIn time.Duration) {
	if d.refusing.Add(1) == 1 {
		d.srv.cfg.logger.LogAttrs(context.Background(), slog.LevelWarn,
			"agent: proxy refused registration; retrying with backoff",
			slog.String("addr", d.address), slog.String("code", agentwire.CodeOf(err).String()),
			slog.Any("error", err), slog.Duration("retry_in", retryIn))
	}
}

// refusalsEnded counts a refused connection registered again, logging
// when none is refused any more.
func (d *ReverseDialer) refusalsEnded() {
	if d.refusing.Add(-1) == 0 {
		d.srv.cfg.logger.LogAttrs(context.Background(), slog.LevelInfo,
			"agent: proxy accepts registrations again", slog.String("addr", d.address))
	}
}

// rejectionError types the proxy's refusal by its code field, else by the
// "code_name: reason" prefix older proxies send.
func rejectionError(wireCode agentwire.Code, text string) error {
	code := agentwire.CodeUnknown
	reason := text
	if name, rest, ok := strings.Cut(text, ": "); ok {
		var c agentwire.Code
		if c.UnmarshalText([]byte(name)) == nil {
			code, reason = c, rest
		}
	}
	if wireCode != 0 {
		code = wireCode
	}
	if reason == "" {
		reason = "no reason given"
	}
	return agentwire.Errorf(code, "%w: %s", ErrRegistrationRejected, reason)
}

// keep holds one connection: connect, serve, back off, again.
func (d *ReverseDialer) keep(ctx context.Context) {
	failures := 0
	refusals := 0 // registrations refused in a row
	defer func() {
		if refusals > 0 {
			d.refusing.Add(-1)
		}
	}()
	for ctx.Err() == nil && !d.srv.draining() {
		nc, err := d.connect(ctx)
		if err == nil {
			if refusals > 0 {
				refusals = 0
				d.refusalsEnded()
			}
			d.connected.Add(1)
			start := time.Now()
			err = d.serve(ctx, nc)
			d.connected.Add(-1)
			if ctx.Err() != nil {
				return
			}
			if time.Since(start) >= d.cfg.stableAfter {
				failures = 0
			}
			if err == nil {
				err = agentwire.Errorf(agentwire.CodeUnavailable, "agent: reverse connection to %s ended", d.address)
			}
		} else if ctx.Err() != nil {
			return
		}
		refused := errors.Is(err, ErrRegistrationRejected)
		if refused {
			refusals++
		}
		wait := d.backoff(failures, refusals, err)
		failures++
		if refused && refusals == 1 {
			d.refusalsStarted(err, wait)
		}
		if f := d.cfg.onError; f != nil {
			f(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
