"""Ingest: OTLP/HTTP in, rows identical to the OTel Collector ClickHouse exporter's out.

- `receiver`: the `/v1/traces` and `/v1/logs` views (ingest keys, size limits, partialSuccess, 503 on trouble);
- `decode`: a request body to rows, by content type; `otlp`: the protobuf rules and the wire's
  answers; `otlp_json`: the fast path for OTLP/JSON as SDKs write it;
- `batcher`: accepted rows grouped into larger inserts; `spool`: the durable spool that keeps
  acknowledged spans while ClickHouse is away; `span_store`: the one insert into `otel_traces`;
- `logs`: OTLP log records (GenAI events) -> the exporter's `otel_logs` rows; `log_store`: their insert.
"""
