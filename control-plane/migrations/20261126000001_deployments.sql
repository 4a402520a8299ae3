-- Deployments: which version of a pipeline runs, with how much parallelism, running or paused.
-- The record of truth for workers is the `weir_deployments` KV bucket on NATS; this table is the
-- store's copy for queries, quotas and audit. Portable SQL: runs unchanged on SQLite and PostgreSQL.

CREATE TABLE deployments (
    pipeline_id     TEXT PRIMARY KEY REFERENCES pipelines(id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    pipeline        TEXT NOT NULL,
    version         BIGINT NOT NULL,
    parallelism     BIGINT NOT NULL,
    state           TEXT NOT NULL,
    updated_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, pipeline)
);
