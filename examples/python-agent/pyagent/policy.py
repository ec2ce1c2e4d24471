"""The example's policy: block /admin*, mark every allowed request.

request_headers whose uri starts with /admin are blocked with 403 and the
audit tag "admin-blocked"; every other request is allowed and gets the
response header "x-agent: python". Other events are allowed unchanged.
Request-header decisions depend on the path alone (and on the test hook
headers when hooks are on), so they carry a cache directive: a proxy with a
decision cache reuses them for a minute (docs/protocol.md §17).
"""

import asyncio

from .stubs import agent_pb2
from .tracing import log_request_trace

BLOCKED_PREFIX = "/admin"
AUDIT_TAG = "admin-blocked"
RESPONSE_HEADER = ("x-agent", "python")

# Test hooks, honoured only when the policy is built with test_hooks=True
# (agent.py --test-hooks): a request header that delays the decision, to
# exercise cancellation and dead-agent failure, and one that makes the
# handler fail, to exercise error responses.
DELAY_HEADER = "x-agent-test-delay-ms"
FAIL_HEADER = "x-agent-test-fail"
MAX_TEST_DELAY_S = 60.0


class Policy:
    """Decides on events. Stateless; safe to share between connections."""

    def __init__(self, test_hooks=False):
        self.test_hooks = test_hooks

    async def decide(self, case, msg):
        """Returns the AgentResponse for one event envelope (correlation_id is
        filled in by the caller). Raises to report a handler failure."""
        if case == "request_headers":
            return await self._request_headers(msg.request_headers)
        return agent_pb2.AgentResponse(allow=agent_pb2.AllowDecision())

    def _cache(self):
        """The directive: the scope names everything the decision depends on."""
        headers = [DELAY_HEADER, FAIL_HEADER] if self.test_hooks else []
        return agent_pb2.CacheDirective(
            ttl_ms=60_000,
            scope=agent_pb2.CacheScope(path=True, headers=headers),
            body_not_inspected=True,
        )

    async def _request_headers(self, ev):
        log_request_trace(ev.metadata)
        if self.test_hooks:
            await self._test_hooks(ev)
        if ev.uri.startswith(BLOCKED_PREFIX):
            return agent_pb2.AgentResponse(
                cache=self._cache(),
                block=agent_pb2.BlockDecision(
                    status=403,
                    body="forbidden\n",
                    headers=[agent_pb2.Header(name="content-type", value="text/plain")],
                ),
                audit=agent_pb2.AuditMetadata(
                    tags=[AUDIT_TAG],
                    rule_ids=["python-agent/admin-prefix"],
                    reason_codes=["ADMIN_PATH"],
                ),
            )
        name, value = RESPONSE_HEADER
        return agent_pb2.AgentResponse(
            allow=agent_pb2.AllowDecision(),
            response_headers=[agent_pb2.HeaderOp(set=agent_pb2.Header(name=name, value=value))],
            cache=self._cache(),
        )

    async def _test_hooks(self, ev):
        for h in ev.headers:
            name = h.name.lower()
            if name == DELAY_HEADER:
                try:
                    delay = float(h.value) / 1000.0
                except ValueError:
                    raise ValueError(f"{DELAY_HEADER}: {h.value!r} is not a number") from None
                await asyncio.sleep(min(max(delay, 0.0), MAX_TEST_DELAY_S))
            elif name == FAIL_HEADER:
                raise RuntimeError(f"failure requested by {FAIL_HEADER}: {h.value}")
