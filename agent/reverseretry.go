package agent

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
)

// backoff is the wait after the failures-th consecutive failure, of which
// the last refusals were refused registrations: "equal jitter", between
// half and all of min·2^failures capped at max, or of max itself for a
// refusal that retrying soon cannot fix.
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
// proxy closing down (Unavailable) comes back or is replaced; a capacity
// refusal (ResourceExhausted) first in a row may only mean the proxy has
// not yet seen one of our connections end, later ones that it is full.
func retrySoon(c agentwire.Code, refusals int) bool {
	return c == agentwire.CodeUnavailable || c == agentwire.CodeResourceExhausted && refusals <= 1
}

// refusalsStarted counts a connection whose registration the proxy refused
// after one that it accepted (or none), and logs the first of the dialer's
// connections to be refused: one warning per streak, not one per attempt.
func (d *ReverseDialer) refusalsStarted(err error, retryIn time.Duration) {
	if d.refusing.Add(1) == 1 {
		d.srv.cfg.logger.LogAttrs(context.Background(), slog.LevelWarn,
			"agent: proxy refused registration; retrying with backoff",
			slog.String("addr", d.address), slog.String("code", agentwire.CodeOf(err).String()),
			slog.Any("error", err), slog.Duration("retry_in", retryIn))
	}
}

// refusalsEnded counts a refused connection registered again, and logs when
// none is refused any more.
func (d *ReverseDialer) refusalsEnded() {
	if d.refusing.Add(-1) == 0 {
		d.srv.cfg.logger.LogAttrs(context.Background(), slog.LevelInfo,
			"agent: proxy accepts registrations again", slog.String("addr", d.address))
	}
}

// rejectionError turns the proxy's refusal into a typed error: the code
// field when set, else the "code_name: reason" prefix older proxies send.
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
