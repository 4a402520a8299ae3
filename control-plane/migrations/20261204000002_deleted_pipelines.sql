-- Deleted pipelines: the last spec of a pipeline that was deleted, so that its dead letters
-- (which stay in their stream) can still be listed, redriven and purged by its name until a
-- pipeline of that name exists again. Portable SQL: runs unchanged on SQLite and PostgreSQL.

CREATE TABLE deleted_pipelines (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    spec_json   TEXT NOT NULL,
    deleted_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
