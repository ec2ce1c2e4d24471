"""W3C trace context from RequestMetadata.traceparent.

Debian ships no OpenTelemetry for Python (apt-cache search opentelemetry
lists only the Go module), so this agent does not continue the trace with
spans: it parses traceparent and logs the ids at debug level, so its log lines
can be joined with the proxy's trace by hand.
"""

import logging
import re

log = logging.getLogger("pyagent.tracing")

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


class TraceContext:
    """A parsed traceparent. Immutable."""

    __slots__ = ("trace_id", "parent_id", "sampled", "tracestate")

    def __init__(self, trace_id, parent_id, sampled, tracestate=""):
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.sampled = sampled
        self.tracestate = tracestate


def parse_traceparent(value, tracestate=""):
    """Returns the TraceContext in a traceparent header, or None if the value
    is absent or invalid (per W3C Trace Context: version ff and all-zero ids
    are invalid; a version-00 value must have exactly four fields)."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if not m:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return TraceContext(trace_id, parent_id, bool(int(flags, 16) & 1), tracestate or "")


def log_request_trace(metadata):
    """Logs the trace context of a request's metadata at debug level and
    returns it (None when the proxy sent none or an invalid one)."""
    if not metadata.HasField("traceparent"):
        return None
    tc = parse_traceparent(metadata.traceparent, metadata.tracestate)
    if tc is None:
        log.debug("correlation_id=%s invalid traceparent %r", metadata.correlation_id, metadata.traceparent)
        return None
    log.debug(
        "correlation_id=%s trace_id=%s parent_span_id=%s sampled=%s",
        metadata.correlation_id,
        tc.trace_id,
        tc.parent_id,
        tc.sampled,
    )
    return tc
