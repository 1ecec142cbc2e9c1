"""OpenTelemetry tracing: one trace per conversation turn.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: OTLP over
HTTP) or `ZAPA_TRACING=console` (spans printed on stdout) is set. Off, no SDK is loaded and
nothing is instrumented: the spans the core starts are the API's no-op ones, unless the
process set up an SDK of its own (a Zapa service calling `send_message.delay` does: the
enqueue span and the message's `traceparent` then follow that service's trace).

On, `configure_tracing` builds the SDK once per process (in gunicorn's worker, after the
fork and gevent's patching; in Celery's worker at `worker_init`, or its pool child)
and instruments `requests` (the bridge calls), redis-py and, when asked, the Flask app and
the Celery worker. Task messages we build ourselves (store/publisher.py) carry the W3C
`traceparent` in their headers, which the Celery instrumentation reads on the worker side
(`task.request.traceparent`), so a handed-on task continues the trace that queued it.

No span attribute names a query string (the webhook's `?token=`): URL attributes lose
theirs before export. Redis command spans are kept only inside a trace (a worker's polling
and the background loops would otherwise start a trace every few milliseconds), and they
show the command without its arguments.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context

from zapa_bridge.logs import line

if TYPE_CHECKING:  # the SDK is imported only when tracing is on
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("zapa.tracing")

TRACING_VARIABLE = "ZAPA_TRACING"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACER_NAME = "zapa_bridge"
# Probes and scrapes come every few seconds and say nothing about a conversation.
DEFAULT_EXCLUDED_URLS = "/healthz,/readyz,/metrics,/favicon.ico"
# Attributes that may hold a URL with its query string, and those that are the query.
URL_ATTRIBUTES = frozenset({"http.url", "url.full", "http.target"})
QUERY_ATTRIBUTES = frozenset({"url.query"})

_api_tracer = trace.get_tracer(TRACER_NAME)  # follows whatever provider the process sets


@dataclass(frozen=True, slots=True)
class _Configured:
    provider: TracerProvider
    tracer: trace.Tracer


_configured: _Configured | None = None


def tracing_mode() -> str | None:
    """`console`, `otlp`, or None (off), from the environment."""
    if os.environ.get(TRACING_VARIABLE, "").strip().lower() == "console":
        return "console"
    if any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES):
        return "otlp"
    return None


def configure_tracing(service_name: str, *, flask_app: Any = None, celery: bool = False,
                      exporter: SpanExporter | None = None) -> TracerProvider | None:
    """Set up tracing for this process, once; None when it is off.

    `flask_app` is instrumented (each app once), `celery` instruments the worker side and
    Celery's own publishes (retries). `exporter` replaces the environment's choice and
    exports each span as it ends (tests).
    """
    global _configured
    # A forked child keeps its parent's: the SDK starts the export thread again after a fork.
    if _configured is None:
        mode = tracing_mode()
        if exporter is None and mode is None:
            return None
        provider = _build_provider(service_name, mode, exporter)
        _configured = _Configured(provider, provider.get_tracer(TRACER_NAME))
        log.info(line("tracing.on", service=service_name,
                      exporter="given" if exporter is not None else mode))
        if celery:
            from opentelemetry.instrumentation.celery import CeleryInstrumentor

            CeleryInstrumentor().instrument(  # type: ignore[no-untyped-call]
                tracer_provider=provider)
    provider = _configured.provider
    if flask_app is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]
            flask_app, tracer_provider=provider, enable_commenter=False,
            excluded_urls=os.environ.get("OTEL_PYTHON_FLASK_EXCLUDED_URLS")
            or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS") or DEFAULT_EXCLUDED_URLS)
    return provider


def shutdown_tracing() -> None:
    """Undo `configure_tracing` (tests): flush and stop the exporter, remove the
    instrumentation of requests, redis-py and Celery."""
    global _configured
    if _configured is None:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    celery = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    for instrumentor in (celery, RedisInstrumentor(), RequestsInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _configured.provider.shutdown()
    _configured = None


def tracer() -> trace.Tracer:
    """The tracer of our own spans."""
    return _configured.tracer if _configured is not None else _api_tracer


def current_traceparent() -> dict[str, str]:
    """The current span's W3C trace context as message headers (`traceparent`, and
    `tracestate`, and `baggage` when there is some); empty outside any trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(headers: Mapping[str, Any] | None) -> Context | None:
    """The remote span context `headers` carry (as `current_traceparent` wrote them), or
    None when they carry none that is valid."""
    if not headers or not headers.get("traceparent"):
        return None
    carrier = {key: str(value) for key, value in headers.items() if isinstance(value, str)}
    found = propagate.extract(carrier)
    if not trace.get_current_span(found).get_span_context().is_valid:
        return None
    return found


def span(name: str, *, parent: Context | None = None, links: Sequence[trace.Link] = (),
         kind: trace.SpanKind = trace.SpanKind.INTERNAL,
         attributes: Mapping[str, str | int | bool] | None = None,
         ) -> AbstractContextManager[trace.Span]:
    """A span of ours, current inside the block; `parent` replaces the current context.
    Attributes must never hold message text, tokens or unmasked numbers, and an exception
    is recorded by its kind alone (its text may quote a message). With no SDK in the
    process, a shared do-nothing block."""
    if _configured is None and isinstance(trace.get_tracer_provider(),
                                          trace.ProxyTracerProvider):
        return _OFF
    return _span(name, parent, links, kind, attributes)


def finished_span(name: str, *, started_ns: int, traceparent: str,
                  links: Sequence[trace.Link] = (),
                  attributes: Mapping[str, str | int | bool] | None = None) -> None:
    """A span from `started_ns` to now, in the trace `traceparent` names (none when it is
    not valid): for a step whose trace is known only once a Redis call has answered (a
    receipt learns the send it belongs to from the record it moved)."""
    parent = context_from({"traceparent": traceparent})
    if parent is None:
        return
    tracer().start_span(name, context=parent, links=links, attributes=dict(attributes or {}),
                        start_time=started_ns).end()


_OFF: AbstractContextManager[trace.Span] = contextlib.nullcontext(trace.INVALID_SPAN)


@contextlib.contextmanager
def _span(name: str, parent: Context | None, links: Sequence[trace.Link],
          kind: trace.SpanKind,
          attributes: Mapping[str, str | int | bool] | None) -> Iterator[trace.Span]:
    with tracer().start_as_current_span(
            name, context=parent, kind=kind, links=links, attributes=dict(attributes or {}),
            record_exception=False, set_status_on_exception=False) as current:
        try:
            yield current
        except Exception as exc:
            current.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            raise


def _build_provider(service_name: str, mode: str | None,
                    exporter: SpanExporter | None) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured by Resource.create; the
    # name given here applies when neither names the service.
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {SERVICE_NAME: service_name})
    # The batch processor's thread is a greenlet under gevent's patching, which the web
    # worker applies before it loads the app; the SDK starts it again in a forked child.
    processor = _url_scrubber(SimpleSpanProcessor(exporter) if exporter is not None
                              else BatchSpanProcessor(_exporter(mode)))
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER
    provider.add_span_processor(processor)
    _instrument_clients(provider, processor)
    return provider


def _exporter(mode: str | None) -> SpanExporter:
    if mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables


def _instrument_clients(provider: TracerProvider, processor: SpanProcessor) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    RequestsInstrumentor().instrument(tracer_provider=provider)
    # Redis spans only inside a trace: same resource and export, no root spans.
    inside_only = TracerProvider(resource=provider.resource, sampler=ParentBased(ALWAYS_OFF),
                                 shutdown_on_exit=False)
    inside_only.add_span_processor(processor)
    RedisInstrumentor().instrument(tracer_provider=inside_only)


def _scrub(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """`attributes` without query strings; None when there was none to remove."""
    changed = False
    clean: dict[str, Any] = {}
    for key, value in attributes.items():
        if key in QUERY_ATTRIBUTES:
            changed = True
            continue
        if key in URL_ATTRIBUTES and isinstance(value, str) and "?" in value:
            value = value.split("?", 1)[0]
            changed = True
        clean[key] = value
    return clean if changed else None


def _scrubbed(span: ReadableSpan) -> ReadableSpan:
    from opentelemetry.sdk.trace import ReadableSpan

    clean = _scrub(span.attributes or {})
    if clean is None:
        return span
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=clean, events=span.events, links=span.links, kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope)


def _url_scrubber(inner: SpanProcessor) -> SpanProcessor:
    """A span processor that passes each ended span on to `inner` without query strings in
    its URL attributes. Instrumentations set those attributes again after any hook of theirs
    ran, so the span is cleaned as it leaves, before any exporter sees it."""
    from opentelemetry.sdk.trace import SpanProcessor

    class UrlScrubber(SpanProcessor):
        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            inner.on_start(span, parent_context=parent_context)

        def on_end(self, span: ReadableSpan) -> None:
            inner.on_end(_scrubbed(span))

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return UrlScrubber()
