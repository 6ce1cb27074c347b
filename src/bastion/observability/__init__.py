"""Observability: Prometheus metrics, CloudWatch EMF, structured-log context, OpenTelemetry traces.

Modules: `specs` (every figure, named for both outlets), `metrics` (the Prometheus instruments and `METRICS`, which
the request path calls), `emf`, `exposition` (/metrics), `multiprocess` (--workers N), `context` (request and
trace id for logs and audit), `middleware`, `tracing`, `setup` (what create_app wires in). docs/observability.md.
"""
