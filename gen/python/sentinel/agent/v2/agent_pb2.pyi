from sentinel.agent.v2 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CANCEL_REASON_BLOCKED_BY_AGENT: CancelReason
CANCEL_REASON_CLIENT_DISCONNECT: CancelReason
CANCEL_REASON_MANUAL: CancelReason
CANCEL_REASON_PROXY_SHUTDOWN: CancelReason
CANCEL_REASON_TIMEOUT: CancelReason
CANCEL_REASON_UNSPECIFIED: CancelReason
CANCEL_REASON_UPSTREAM_ERROR: CancelReason
DESCRIPTOR: _descriptor.FileDescriptor
EVENT_TYPE_CONFIGURE: EventType
EVENT_TYPE_GUARDRAIL_INSPECT: EventType
EVENT_TYPE_REQUEST_BODY_CHUNK: EventType
EVENT_TYPE_REQUEST_COMPLETE: EventType
EVENT_TYPE_REQUEST_HEADERS: EventType
EVENT_TYPE_RESPONSE_BODY_CHUNK: EventType
EVENT_TYPE_RESPONSE_HEADERS: EventType
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_WEBSOCKET_FRAME: EventType
FLOW_ACTION_PAUSE: FlowAction
FLOW_ACTION_RESUME: FlowAction
FLOW_ACTION_UNSPECIFIED: FlowAction
FLOW_ACTION_UPDATE_CAPACITY: FlowAction
GUARDRAIL_CONTENT_TYPE_PROMPT: GuardrailContentType
GUARDRAIL_CONTENT_TYPE_RESPONSE: GuardrailContentType
GUARDRAIL_CONTENT_TYPE_SYSTEM: GuardrailContentType
GUARDRAIL_CONTENT_TYPE_TOOL_CALL: GuardrailContentType
GUARDRAIL_CONTENT_TYPE_TOOL_RESULT: GuardrailContentType
GUARDRAIL_CONTENT_TYPE_UNSPECIFIED: GuardrailContentType
HEALTH_STATE_DEGRADED: HealthState
HEALTH_STATE_DRAINING: HealthState
HEALTH_STATE_HEALTHY: HealthState
HEALTH_STATE_UNHEALTHY: HealthState
HEALTH_STATE_UNSPECIFIED: HealthState
LOG_LEVEL_DEBUG: LogLevel
LOG_LEVEL_ERROR: LogLevel
LOG_LEVEL_INFO: LogLevel
LOG_LEVEL_UNSPECIFIED: LogLevel
LOG_LEVEL_WARN: LogLevel

class AgentCapabilities(_message.Message):
    __slots__ = ["agent_id", "features", "health_config", "limits", "name", "protocol_version", "supported_events", "version"]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CONFIG_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    features: AgentFeatures
    health_config: HealthConfig
    limits: AgentLimits
    name: str
    protocol_version: int
    supported_events: _containers.RepeatedScalarFieldContainer[EventType]
    version: str
    def __init__(self, protocol_version: _Optional[int] = ..., agent_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., supported_events: _Optional[_Iterable[_Union[EventType, str]]] = ..., features: _Optional[_Union[AgentFeatures, _Mapping]] = ..., limits: _Optional[_Union[AgentLimits, _Mapping]] = ..., health_config: _Optional[_Union[HealthConfig, _Mapping]] = ...) -> None: ...

class AgentControl(_message.Message):
    __slots__ = ["config_update", "health", "log", "metrics"]
    CONFIG_UPDATE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    config_update: ConfigUpdateRequest
    health: HealthStatus
    log: LogMessage
    metrics: MetricsReport
    def __init__(self, health: _Optional[_Union[HealthStatus, _Mapping]] = ..., metrics: _Optional[_Union[MetricsReport, _Mapping]] = ..., config_update: _Optional[_Union[ConfigUpdateRequest, _Mapping]] = ..., log: _Optional[_Union[LogMessage, _Mapping]] = ...) -> None: ...

class AgentFeatures(_message.Message):
    __slots__ = ["cancellation", "concurrent_requests", "config_push", "echoes_event_id", "flow_control", "guardrails", "health_reporting", "metrics_export", "streaming_body", "websocket"]
    CANCELLATION_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PUSH_FIELD_NUMBER: _ClassVar[int]
    ECHOES_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_CONTROL_FIELD_NUMBER: _ClassVar[int]
    GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_REPORTING_FIELD_NUMBER: _ClassVar[int]
    METRICS_EXPORT_FIELD_NUMBER: _ClassVar[int]
    STREAMING_BODY_FIELD_NUMBER: _ClassVar[int]
    WEBSOCKET_FIELD_NUMBER: _ClassVar[int]
    cancellation: bool
    concurrent_requests: int
    config_push: bool
    echoes_event_id: bool
    flow_control: bool
    guardrails: bool
    health_reporting: bool
    metrics_export: bool
    streaming_body: bool
    websocket: bool
    def __init__(self, streaming_body: bool = ..., websocket: bool = ..., guardrails: bool = ..., config_push: bool = ..., metrics_export: bool = ..., concurrent_requests: _Optional[int] = ..., cancellation: bool = ..., flow_control: bool = ..., health_reporting: bool = ..., echoes_event_id: bool = ...) -> None: ...

class AgentLimits(_message.Message):
    __slots__ = ["max_body_size", "max_concurrency", "max_memory", "max_processing_time_ms", "preferred_chunk_size"]
    MAX_BODY_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_FIELD_NUMBER: _ClassVar[int]
    MAX_PROCESSING_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    max_body_size: int
    max_concurrency: int
    max_memory: int
    max_processing_time_ms: int
    preferred_chunk_size: int
    def __init__(self, max_body_size: _Optional[int] = ..., max_concurrency: _Optional[int] = ..., preferred_chunk_size: _Optional[int] = ..., max_memory: _Optional[int] = ..., max_processing_time_ms: _Optional[int] = ...) -> None: ...

class AgentResponse(_message.Message):
    __slots__ = ["allow", "audit", "block", "cache", "challenge", "correlation_id", "error", "needs_more", "processing_time_ms", "redirect", "request_body_mutation", "request_headers", "response_body_mutation", "response_headers", "routing_metadata", "websocket_decision"]
    class RoutingMetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NEEDS_MORE_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_MUTATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HEADERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_MUTATION_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_METADATA_FIELD_NUMBER: _ClassVar[int]
    WEBSOCKET_DECISION_FIELD_NUMBER: _ClassVar[int]
    allow: AllowDecision
    audit: AuditMetadata
    block: BlockDecision
    cache: CacheDirective
    challenge: ChallengeDecision
    correlation_id: str
    error: Status
    needs_more: bool
    processing_time_ms: int
    redirect: RedirectDecision
    request_body_mutation: BodyMutation
    request_headers: _containers.RepeatedCompositeFieldContainer[HeaderOp]
    response_body_mutation: BodyMutation
    response_headers: _containers.RepeatedCompositeFieldContainer[HeaderOp]
    routing_metadata: _containers.ScalarMap[str, str]
    websocket_decision: WebSocketDecision
    def __init__(self, correlation_id: _Optional[str] = ..., allow: _Optional[_Union[AllowDecision, _Mapping]] = ..., block: _Optional[_Union[BlockDecision, _Mapping]] = ..., redirect: _Optional[_Union[RedirectDecision, _Mapping]] = ..., challenge: _Optional[_Union[ChallengeDecision, _Mapping]] = ..., request_headers: _Optional[_Iterable[_Union[HeaderOp, _Mapping]]] = ..., response_headers: _Optional[_Iterable[_Union[HeaderOp, _Mapping]]] = ..., audit: _Optional[_Union[AuditMetadata, _Mapping]] = ..., processing_time_ms: _Optional[int] = ..., needs_more: bool = ..., error: _Optional[_Union[Status, _Mapping]] = ..., cache: _Optional[_Union[CacheDirective, _Mapping]] = ..., request_body_mutation: _Optional[_Union[BodyMutation, _Mapping]] = ..., response_body_mutation: _Optional[_Union[BodyMutation, _Mapping]] = ..., websocket_decision: _Optional[_Union[WebSocketDecision, _Mapping]] = ..., routing_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AgentToProxy(_message.Message):
    __slots__ = ["config_update", "event_id", "flow_control", "handshake", "health", "log", "metrics", "ping", "pong", "registration", "response"]
    CONFIG_UPDATE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_CONTROL_FIELD_NUMBER: _ClassVar[int]
    HANDSHAKE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    config_update: ConfigUpdateRequest
    event_id: int
    flow_control: FlowControlSignal
    handshake: HandshakeResponse
    health: HealthStatus
    log: LogMessage
    metrics: MetricsReport
    ping: Ping
    pong: Pong
    registration: RegistrationRequest
    response: AgentResponse
    def __init__(self, handshake: _Optional[_Union[HandshakeResponse, _Mapping]] = ..., response: _Optional[_Union[AgentResponse, _Mapping]] = ..., health: _Optional[_Union[HealthStatus, _Mapping]] = ..., metrics: _Optional[_Union[MetricsReport, _Mapping]] = ..., config_update: _Optional[_Union[ConfigUpdateRequest, _Mapping]] = ..., flow_control: _Optional[_Union[FlowControlSignal, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., log: _Optional[_Union[LogMessage, _Mapping]] = ..., registration: _Optional[_Union[RegistrationRequest, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., event_id: _Optional[int] = ...) -> None: ...

class AllowDecision(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class AuditMetadata(_message.Message):
    __slots__ = ["confidence", "custom", "reason_codes", "rule_ids", "tags"]
    class CustomEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    RULE_IDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    confidence: float
    custom: _containers.ScalarMap[str, str]
    reason_codes: _containers.RepeatedScalarFieldContainer[str]
    rule_ids: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., rule_ids: _Optional[_Iterable[str]] = ..., confidence: _Optional[float] = ..., reason_codes: _Optional[_Iterable[str]] = ..., custom: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BlockDecision(_message.Message):
    __slots__ = ["body", "headers", "status"]
    BODY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    body: str
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    status: int
    def __init__(self, status: _Optional[int] = ..., body: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ...) -> None: ...

class BodyChunkEvent(_message.Message):
    __slots__ = ["bytes_transferred", "chunk_index", "correlation_id", "data", "is_last", "proxy_buffer_available", "timestamp_ms", "total_size"]
    BYTES_TRANSFERRED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    IS_LAST_FIELD_NUMBER: _ClassVar[int]
    PROXY_BUFFER_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    bytes_transferred: int
    chunk_index: int
    correlation_id: str
    data: bytes
    is_last: bool
    proxy_buffer_available: int
    timestamp_ms: int
    total_size: int
    def __init__(self, correlation_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., data: _Optional[bytes] = ..., is_last: bool = ..., total_size: _Optional[int] = ..., bytes_transferred: _Optional[int] = ..., proxy_buffer_available: _Optional[int] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class BodyMutation(_message.Message):
    __slots__ = ["chunk_index", "data"]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    chunk_index: int
    data: bytes
    def __init__(self, chunk_index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class CacheDirective(_message.Message):
    __slots__ = ["body_not_inspected", "scope", "stale_ms", "tags", "ttl_ms"]
    BODY_NOT_INSPECTED_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STALE_MS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    body_not_inspected: bool
    scope: CacheScope
    stale_ms: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    ttl_ms: int
    def __init__(self, ttl_ms: _Optional[int] = ..., scope: _Optional[_Union[CacheScope, _Mapping]] = ..., stale_ms: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., body_not_inspected: bool = ...) -> None: ...

class CachePurge(_message.Message):
    __slots__ = ["tags"]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class CacheScope(_message.Message):
    __slots__ = ["client_ip", "headers", "method", "path", "query", "route"]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    client_ip: bool
    headers: _containers.RepeatedScalarFieldContainer[str]
    method: bool
    path: bool
    query: bool
    route: bool
    def __init__(self, method: bool = ..., path: bool = ..., query: bool = ..., headers: _Optional[_Iterable[str]] = ..., client_ip: bool = ..., route: bool = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ["blocking_agent_id", "correlation_id", "manual_reason", "reason", "timestamp_ms"]
    BLOCKING_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    MANUAL_REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    blocking_agent_id: str
    correlation_id: str
    manual_reason: str
    reason: CancelReason
    timestamp_ms: int
    def __init__(self, correlation_id: _Optional[str] = ..., reason: _Optional[_Union[CancelReason, str]] = ..., timestamp_ms: _Optional[int] = ..., blocking_agent_id: _Optional[str] = ..., manual_reason: _Optional[str] = ...) -> None: ...

class ChallengeDecision(_message.Message):
    __slots__ = ["challenge_type", "params"]
    class ParamsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHALLENGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    challenge_type: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, challenge_type: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ConfigError(_message.Message):
    __slots__ = ["error", "field"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    error: str
    field: str
    def __init__(self, error: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class ConfigUpdateRequest(_message.Message):
    __slots__ = ["cache_purge", "config_error", "list_update", "request_id", "request_reload", "restart_required", "rule_update", "timestamp_ms"]
    CACHE_PURGE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ERROR_FIELD_NUMBER: _ClassVar[int]
    LIST_UPDATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_RELOAD_FIELD_NUMBER: _ClassVar[int]
    RESTART_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    RULE_UPDATE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    cache_purge: CachePurge
    config_error: ConfigError
    list_update: ListUpdate
    request_id: str
    request_reload: RequestReload
    restart_required: RestartRequired
    rule_update: RuleUpdate
    timestamp_ms: int
    def __init__(self, request_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., request_reload: _Optional[_Union[RequestReload, _Mapping]] = ..., rule_update: _Optional[_Union[RuleUpdate, _Mapping]] = ..., list_update: _Optional[_Union[ListUpdate, _Mapping]] = ..., restart_required: _Optional[_Union[RestartRequired, _Mapping]] = ..., config_error: _Optional[_Union[ConfigError, _Mapping]] = ..., cache_purge: _Optional[_Union[CachePurge, _Mapping]] = ...) -> None: ...

class ConfigUpdateResponse(_message.Message):
    __slots__ = ["accepted", "error", "request_id", "timestamp_ms"]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    error: str
    request_id: str
    timestamp_ms: int
    def __init__(self, request_id: _Optional[str] = ..., accepted: bool = ..., error: _Optional[str] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class ConfigureEvent(_message.Message):
    __slots__ = ["config_json", "config_version", "is_initial", "timestamp_ms"]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    IS_INITIAL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    config_json: str
    config_version: str
    is_initial: bool
    timestamp_ms: int
    def __init__(self, config_json: _Optional[str] = ..., config_version: _Optional[str] = ..., is_initial: bool = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class CounterMetric(_message.Message):
    __slots__ = ["help", "labels", "name", "value"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HELP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    help: str
    labels: _containers.ScalarMap[str, str]
    name: str
    value: int
    def __init__(self, name: _Optional[str] = ..., help: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., value: _Optional[int] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ["duration_ms", "reason", "timestamp_ms"]
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_CONFIG_RELOAD: DrainRequest.Reason
    REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_HEALTH_CHECK_FAILED: DrainRequest.Reason
    REASON_MAINTENANCE: DrainRequest.Reason
    REASON_MANUAL: DrainRequest.Reason
    REASON_UNSPECIFIED: DrainRequest.Reason
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    duration_ms: int
    reason: DrainRequest.Reason
    timestamp_ms: int
    def __init__(self, duration_ms: _Optional[int] = ..., reason: _Optional[_Union[DrainRequest.Reason, str]] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class FlowControlSignal(_message.Message):
    __slots__ = ["action", "buffer_available", "correlation_id", "timestamp_ms"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BUFFER_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    action: FlowAction
    buffer_available: int
    correlation_id: str
    timestamp_ms: int
    def __init__(self, correlation_id: _Optional[str] = ..., action: _Optional[_Union[FlowAction, str]] = ..., buffer_available: _Optional[int] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class GaugeMetric(_message.Message):
    __slots__ = ["help", "labels", "name", "value"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HELP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    help: str
    labels: _containers.ScalarMap[str, str]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., help: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ...) -> None: ...

class GuardrailInspectEvent(_message.Message):
    __slots__ = ["content", "content_type", "context_json", "correlation_id", "model"]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    content: str
    content_type: GuardrailContentType
    context_json: str
    correlation_id: str
    model: str
    def __init__(self, correlation_id: _Optional[str] = ..., content: _Optional[str] = ..., content_type: _Optional[_Union[GuardrailContentType, str]] = ..., model: _Optional[str] = ..., context_json: _Optional[str] = ...) -> None: ...

class HandshakeRequest(_message.Message):
    __slots__ = ["config_json", "health_report_interval_ms", "proxy_id", "proxy_version", "supported_encodings", "supported_versions"]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    HEALTH_REPORT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    PROXY_ID_FIELD_NUMBER: _ClassVar[int]
    PROXY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    config_json: str
    health_report_interval_ms: int
    proxy_id: str
    proxy_version: str
    supported_encodings: _containers.RepeatedScalarFieldContainer[str]
    supported_versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, supported_versions: _Optional[_Iterable[int]] = ..., proxy_id: _Optional[str] = ..., proxy_version: _Optional[str] = ..., config_json: _Optional[str] = ..., supported_encodings: _Optional[_Iterable[str]] = ..., health_report_interval_ms: _Optional[int] = ...) -> None: ...

class HandshakeResponse(_message.Message):
    __slots__ = ["capabilities", "encoding", "error", "protocol_version", "success"]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    capabilities: AgentCapabilities
    encoding: str
    error: str
    protocol_version: int
    success: bool
    def __init__(self, protocol_version: _Optional[int] = ..., capabilities: _Optional[_Union[AgentCapabilities, _Mapping]] = ..., success: bool = ..., error: _Optional[str] = ..., encoding: _Optional[str] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ["name", "value"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class HeaderOp(_message.Message):
    __slots__ = ["add", "remove", "set"]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    add: Header
    remove: str
    set: Header
    def __init__(self, set: _Optional[_Union[Header, _Mapping]] = ..., add: _Optional[_Union[Header, _Mapping]] = ..., remove: _Optional[str] = ...) -> None: ...

class HealthConfig(_message.Message):
    __slots__ = ["include_load_metrics", "include_resource_metrics", "report_interval_ms"]
    INCLUDE_LOAD_METRICS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RESOURCE_METRICS_FIELD_NUMBER: _ClassVar[int]
    REPORT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    include_load_metrics: bool
    include_resource_metrics: bool
    report_interval_ms: int
    def __init__(self, report_interval_ms: _Optional[int] = ..., include_load_metrics: bool = ..., include_resource_metrics: bool = ...) -> None: ...

class HealthStatus(_message.Message):
    __slots__ = ["agent_id", "disabled_features", "drain_eta_ms", "load", "message", "recoverable", "resources", "state", "timeout_multiplier", "timestamp_ms", "unhealthy_reason", "valid_until_ms"]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FEATURES_FIELD_NUMBER: _ClassVar[int]
    DRAIN_ETA_MS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECOVERABLE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_REASON_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    disabled_features: _containers.RepeatedScalarFieldContainer[str]
    drain_eta_ms: int
    load: LoadMetrics
    message: str
    recoverable: bool
    resources: ResourceMetrics
    state: HealthState
    timeout_multiplier: float
    timestamp_ms: int
    unhealthy_reason: str
    valid_until_ms: int
    def __init__(self, agent_id: _Optional[str] = ..., state: _Optional[_Union[HealthState, str]] = ..., message: _Optional[str] = ..., load: _Optional[_Union[LoadMetrics, _Mapping]] = ..., resources: _Optional[_Union[ResourceMetrics, _Mapping]] = ..., valid_until_ms: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., disabled_features: _Optional[_Iterable[str]] = ..., timeout_multiplier: _Optional[float] = ..., drain_eta_ms: _Optional[int] = ..., unhealthy_reason: _Optional[str] = ..., recoverable: bool = ...) -> None: ...

class HistogramBucket(_message.Message):
    __slots__ = ["count", "le"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LE_FIELD_NUMBER: _ClassVar[int]
    count: int
    le: float
    def __init__(self, le: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class HistogramMetric(_message.Message):
    __slots__ = ["buckets", "count", "help", "labels", "name", "sum"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    HELP_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[HistogramBucket]
    count: int
    help: str
    labels: _containers.ScalarMap[str, str]
    name: str
    sum: float
    def __init__(self, name: _Optional[str] = ..., help: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., sum: _Optional[float] = ..., count: _Optional[int] = ..., buckets: _Optional[_Iterable[_Union[HistogramBucket, _Mapping]]] = ...) -> None: ...

class ListUpdate(_message.Message):
    __slots__ = ["add", "list_id", "remove"]
    ADD_FIELD_NUMBER: _ClassVar[int]
    LIST_ID_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    add: _containers.RepeatedScalarFieldContainer[str]
    list_id: str
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, list_id: _Optional[str] = ..., add: _Optional[_Iterable[str]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class LoadMetrics(_message.Message):
    __slots__ = ["avg_latency_ms", "in_flight", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "queue_depth", "requests_processed", "requests_rejected", "requests_timed_out"]
    AVG_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    P50_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    P95_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    P99_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    avg_latency_ms: float
    in_flight: int
    p50_latency_ms: float
    p95_latency_ms: float
    p99_latency_ms: float
    queue_depth: int
    requests_processed: int
    requests_rejected: int
    requests_timed_out: int
    def __init__(self, in_flight: _Optional[int] = ..., queue_depth: _Optional[int] = ..., avg_latency_ms: _Optional[float] = ..., p50_latency_ms: _Optional[float] = ..., p95_latency_ms: _Optional[float] = ..., p99_latency_ms: _Optional[float] = ..., requests_processed: _Optional[int] = ..., requests_rejected: _Optional[int] = ..., requests_timed_out: _Optional[int] = ...) -> None: ...

class LogMessage(_message.Message):
    __slots__ = ["correlation_id", "fields", "level", "message", "timestamp_ms"]
    class FieldsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    fields: _containers.ScalarMap[str, str]
    level: LogLevel
    message: str
    timestamp_ms: int
    def __init__(self, level: _Optional[_Union[LogLevel, str]] = ..., message: _Optional[str] = ..., correlation_id: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class MetricsReport(_message.Message):
    __slots__ = ["agent_id", "counters", "gauges", "histograms", "interval_ms", "timestamp_ms"]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    GAUGES_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    counters: _containers.RepeatedCompositeFieldContainer[CounterMetric]
    gauges: _containers.RepeatedCompositeFieldContainer[GaugeMetric]
    histograms: _containers.RepeatedCompositeFieldContainer[HistogramMetric]
    interval_ms: int
    timestamp_ms: int
    def __init__(self, agent_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., interval_ms: _Optional[int] = ..., counters: _Optional[_Iterable[_Union[CounterMetric, _Mapping]]] = ..., gauges: _Optional[_Iterable[_Union[GaugeMetric, _Mapping]]] = ..., histograms: _Optional[_Iterable[_Union[HistogramMetric, _Mapping]]] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ["sequence", "timestamp_ms"]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    timestamp_ms: int
    def __init__(self, sequence: _Optional[int] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ["ping_timestamp_ms", "sequence", "timestamp_ms"]
    PING_TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    ping_timestamp_ms: int
    sequence: int
    timestamp_ms: int
    def __init__(self, sequence: _Optional[int] = ..., ping_timestamp_ms: _Optional[int] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class ProxyControl(_message.Message):
    __slots__ = ["config_response", "configure", "drain", "shutdown"]
    CONFIGURE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    config_response: ConfigUpdateResponse
    configure: ConfigureEvent
    drain: DrainRequest
    shutdown: ShutdownRequest
    def __init__(self, configure: _Optional[_Union[ConfigureEvent, _Mapping]] = ..., shutdown: _Optional[_Union[ShutdownRequest, _Mapping]] = ..., drain: _Optional[_Union[DrainRequest, _Mapping]] = ..., config_response: _Optional[_Union[ConfigUpdateResponse, _Mapping]] = ...) -> None: ...

class ProxyToAgent(_message.Message):
    __slots__ = ["cancel", "config_response", "configure", "drain", "event_id", "guardrail", "handshake", "ping", "pong", "registration_response", "request_body_chunk", "request_complete", "request_headers", "response_body_chunk", "response_headers", "shutdown", "websocket_frame"]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    CONFIGURE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_FIELD_NUMBER: _ClassVar[int]
    HANDSHAKE_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_CHUNK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HEADERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    WEBSOCKET_FRAME_FIELD_NUMBER: _ClassVar[int]
    cancel: CancelRequest
    config_response: ConfigUpdateResponse
    configure: ConfigureEvent
    drain: DrainRequest
    event_id: int
    guardrail: GuardrailInspectEvent
    handshake: HandshakeRequest
    ping: Ping
    pong: Pong
    registration_response: RegistrationResponse
    request_body_chunk: BodyChunkEvent
    request_complete: RequestCompleteEvent
    request_headers: RequestHeadersEvent
    response_body_chunk: BodyChunkEvent
    response_headers: ResponseHeadersEvent
    shutdown: ShutdownRequest
    websocket_frame: WebSocketFrameEvent
    def __init__(self, handshake: _Optional[_Union[HandshakeRequest, _Mapping]] = ..., request_headers: _Optional[_Union[RequestHeadersEvent, _Mapping]] = ..., request_body_chunk: _Optional[_Union[BodyChunkEvent, _Mapping]] = ..., response_headers: _Optional[_Union[ResponseHeadersEvent, _Mapping]] = ..., response_body_chunk: _Optional[_Union[BodyChunkEvent, _Mapping]] = ..., websocket_frame: _Optional[_Union[WebSocketFrameEvent, _Mapping]] = ..., guardrail: _Optional[_Union[GuardrailInspectEvent, _Mapping]] = ..., request_complete: _Optional[_Union[RequestCompleteEvent, _Mapping]] = ..., cancel: _Optional[_Union[CancelRequest, _Mapping]] = ..., configure: _Optional[_Union[ConfigureEvent, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., drain: _Optional[_Union[DrainRequest, _Mapping]] = ..., shutdown: _Optional[_Union[ShutdownRequest, _Mapping]] = ..., config_response: _Optional[_Union[ConfigUpdateResponse, _Mapping]] = ..., registration_response: _Optional[_Union[RegistrationResponse, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., event_id: _Optional[int] = ...) -> None: ...

class RedirectDecision(_message.Message):
    __slots__ = ["status", "url"]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    status: int
    url: str
    def __init__(self, url: _Optional[str] = ..., status: _Optional[int] = ...) -> None: ...

class RegistrationRequest(_message.Message):
    __slots__ = ["agent_id", "auth_token", "capabilities", "metadata", "protocol_version"]
    class MetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    auth_token: str
    capabilities: AgentCapabilities
    metadata: _containers.ScalarMap[str, str]
    protocol_version: int
    def __init__(self, protocol_version: _Optional[int] = ..., agent_id: _Optional[str] = ..., capabilities: _Optional[_Union[AgentCapabilities, _Mapping]] = ..., auth_token: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegistrationResponse(_message.Message):
    __slots__ = ["accepted", "code", "config_json", "connection_id", "error", "proxy_id", "proxy_version"]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROXY_ID_FIELD_NUMBER: _ClassVar[int]
    PROXY_VERSION_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    code: int
    config_json: str
    connection_id: str
    error: str
    proxy_id: str
    proxy_version: str
    def __init__(self, accepted: bool = ..., error: _Optional[str] = ..., proxy_id: _Optional[str] = ..., proxy_version: _Optional[str] = ..., connection_id: _Optional[str] = ..., config_json: _Optional[str] = ..., code: _Optional[int] = ...) -> None: ...

class RequestCompleteEvent(_message.Message):
    __slots__ = ["bytes_received", "bytes_sent", "correlation_id", "duration_ms", "error", "from_cache", "status_code", "upstream"]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FROM_CACHE_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    bytes_received: int
    bytes_sent: int
    correlation_id: str
    duration_ms: int
    error: str
    from_cache: bool
    status_code: int
    upstream: str
    def __init__(self, correlation_id: _Optional[str] = ..., status_code: _Optional[int] = ..., duration_ms: _Optional[int] = ..., bytes_received: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., upstream: _Optional[str] = ..., from_cache: bool = ..., error: _Optional[str] = ...) -> None: ...

class RequestHeadersEvent(_message.Message):
    __slots__ = ["headers", "http_version", "metadata", "method", "uri"]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    HTTP_VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    http_version: str
    metadata: RequestMetadata
    method: str
    uri: str
    def __init__(self, metadata: _Optional[_Union[RequestMetadata, _Mapping]] = ..., method: _Optional[str] = ..., uri: _Optional[str] = ..., http_version: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ...) -> None: ...

class RequestMetadata(_message.Message):
    __slots__ = ["client_ip", "client_port", "correlation_id", "protocol", "replay_attempt", "request_id", "route_id", "server_name", "timestamp_ms", "tls_version", "traceparent", "tracestate", "upstream_id"]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PORT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    REPLAY_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    TLS_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_ID_FIELD_NUMBER: _ClassVar[int]
    client_ip: str
    client_port: int
    correlation_id: str
    protocol: str
    replay_attempt: int
    request_id: str
    route_id: str
    server_name: str
    timestamp_ms: int
    tls_version: str
    traceparent: str
    tracestate: str
    upstream_id: str
    def __init__(self, correlation_id: _Optional[str] = ..., request_id: _Optional[str] = ..., client_ip: _Optional[str] = ..., client_port: _Optional[int] = ..., server_name: _Optional[str] = ..., protocol: _Optional[str] = ..., tls_version: _Optional[str] = ..., route_id: _Optional[str] = ..., upstream_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ..., replay_attempt: _Optional[int] = ...) -> None: ...

class RequestReload(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ResourceMetrics(_message.Message):
    __slots__ = ["active_threads", "connections", "cpu_percent", "fd_limit", "memory_bytes", "memory_limit", "open_fds"]
    ACTIVE_THREADS_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    OPEN_FDS_FIELD_NUMBER: _ClassVar[int]
    active_threads: int
    connections: int
    cpu_percent: float
    fd_limit: int
    memory_bytes: int
    memory_limit: int
    open_fds: int
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., memory_limit: _Optional[int] = ..., active_threads: _Optional[int] = ..., open_fds: _Optional[int] = ..., fd_limit: _Optional[int] = ..., connections: _Optional[int] = ...) -> None: ...

class ResponseHeadersEvent(_message.Message):
    __slots__ = ["correlation_id", "headers", "status_code"]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    status_code: int
    def __init__(self, correlation_id: _Optional[str] = ..., status_code: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ...) -> None: ...

class RestartRequired(_message.Message):
    __slots__ = ["grace_period_ms", "reason"]
    GRACE_PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grace_period_ms: int
    reason: str
    def __init__(self, reason: _Optional[str] = ..., grace_period_ms: _Optional[int] = ...) -> None: ...

class RuleDefinition(_message.Message):
    __slots__ = ["definition_json", "description", "enabled", "id", "priority", "tags"]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    definition_json: str
    description: str
    enabled: bool
    id: str
    priority: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., priority: _Optional[int] = ..., definition_json: _Optional[str] = ..., enabled: bool = ..., description: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class RuleUpdate(_message.Message):
    __slots__ = ["remove_rules", "rule_set", "rules"]
    REMOVE_RULES_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    RULE_SET_FIELD_NUMBER: _ClassVar[int]
    remove_rules: _containers.RepeatedScalarFieldContainer[str]
    rule_set: str
    rules: _containers.RepeatedCompositeFieldContainer[RuleDefinition]
    def __init__(self, rule_set: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[RuleDefinition, _Mapping]]] = ..., remove_rules: _Optional[_Iterable[str]] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ["grace_period_ms", "reason", "timestamp_ms"]
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    GRACE_PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_CONFIG_RELOAD: ShutdownRequest.Reason
    REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_GRACEFUL: ShutdownRequest.Reason
    REASON_IMMEDIATE: ShutdownRequest.Reason
    REASON_UNSPECIFIED: ShutdownRequest.Reason
    REASON_UPGRADE: ShutdownRequest.Reason
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    grace_period_ms: int
    reason: ShutdownRequest.Reason
    timestamp_ms: int
    def __init__(self, reason: _Optional[_Union[ShutdownRequest.Reason, str]] = ..., grace_period_ms: _Optional[int] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ["code", "message"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class WebSocketDecision(_message.Message):
    __slots__ = ["action", "close_code", "close_reason"]
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ACTION_ALLOW: WebSocketDecision.Action
    ACTION_CLOSE: WebSocketDecision.Action
    ACTION_DROP: WebSocketDecision.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_UNSPECIFIED: WebSocketDecision.Action
    CLOSE_CODE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    action: WebSocketDecision.Action
    close_code: int
    close_reason: str
    def __init__(self, action: _Optional[_Union[WebSocketDecision.Action, str]] = ..., close_code: _Optional[int] = ..., close_reason: _Optional[str] = ...) -> None: ...

class WebSocketFrameEvent(_message.Message):
    __slots__ = ["client_to_server", "correlation_id", "frame_type", "payload"]
    class FrameType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    CLIENT_TO_SERVER_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_TYPE_BINARY: WebSocketFrameEvent.FrameType
    FRAME_TYPE_CLOSE: WebSocketFrameEvent.FrameType
    FRAME_TYPE_FIELD_NUMBER: _ClassVar[int]
    FRAME_TYPE_PING: WebSocketFrameEvent.FrameType
    FRAME_TYPE_PONG: WebSocketFrameEvent.FrameType
    FRAME_TYPE_TEXT: WebSocketFrameEvent.FrameType
    FRAME_TYPE_UNSPECIFIED: WebSocketFrameEvent.FrameType
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    client_to_server: bool
    correlation_id: str
    frame_type: WebSocketFrameEvent.FrameType
    payload: bytes
    def __init__(self, correlation_id: _Optional[str] = ..., client_to_server: bool = ..., frame_type: _Optional[_Union[WebSocketFrameEvent.FrameType, str]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class HealthState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class FlowAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class CancelReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class LogLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class GuardrailContentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
