package agenttest

import (
	"context"
	"errors"
	"fmt"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// healthSlack is added to the interval a report is expected within, for
// scheduling noise.
const healthSlack = time.Second

type healthReport struct {
	at time.Time
	h  *agentv2.HealthStatus
}

// checkHealth asks for reports at the suite's interval and expects the
// first right after the handshake and the next within the interval. It
// runs only for agents that advertise health reporting.
func checkHealth(ctx context.Context, s *suite) (string, error) {
	reports := make(chan healthReport, 16)
	c, err := s.dial(ctx,
		transport.WithHealthInterval(s.cfg.healthInterval),
		transport.WithHealthHandler(func(h *agentv2.HealthStatus) {
			select {
			case reports <- healthReport{at: time.Now(), h: h}:
			default:
			}
		}))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer closeConn(c)
	start := time.Now()
	caps := c.Capabilities()
	interval := s.cfg.healthInterval
	advertised := time.Duration(caps.GetHealthConfig().GetReportIntervalMs()) * time.Millisecond
	if advertised > 0 {
		interval = advertised
	}
	window := interval + interval/2 + healthSlack
	want := 2
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*window {
		want = 1 // the check's time allows for only the first report
	}

	var got []healthReport
	timer := time.NewTimer(window)
	defer timer.Stop()
	for len(got) < want {
		select {
		case r := <-reports:
			if r.h.GetState() == agentv2.HealthState_HEALTH_STATE_UNSPECIFIED {
				return "", errors.New("health report with state HEALTH_STATE_UNSPECIFIED")
			}
			got = append(got, r)
			timer.Reset(window)
		case <-timer.C:
			if len(got) == 0 {
				return "", fmt.Errorf("no health report within %v of the handshake (interval %v)", window, interval)
			}
			return "", fmt.Errorf("only one health report, none in the %v after it (interval %v)", window, interval)
		case <-ctx.Done():
			return "", fmt.Errorf("%d of %d health reports: %w", len(got), want, ctx.Err())
		}
	}
	detail := fmt.Sprintf("%s, first %v after the handshake", got[0].h.GetState(), got[0].at.Sub(start).Round(time.Millisecond))
	if len(got) > 1 {
		detail += fmt.Sprintf(", next %v later", got[1].at.Sub(got[0].at).Round(time.Millisecond))
	}
	detail += fmt.Sprintf(" (asked %v, advertised %v)", s.cfg.healthInterval, advertised)
	if id := got[0].h.GetAgentId(); id != caps.GetAgentId() {
		detail += fmt.Sprintf("; report agent_id %q differs from the handshake's %q", id, caps.GetAgentId())
	}
	return detail, nil
}
