-- Schema registry: schemas by global id (one row per distinct schema of a tenant), subjects
-- with immutable numbered versions (soft-deleted versions keep their number), and
-- compatibility levels per subject ('' = the tenant's default). Portable SQL: runs unchanged
-- on SQLite and PostgreSQL.

CREATE TABLE schema_id_counter (
    singleton   BIGINT PRIMARY KEY,
    last_id     BIGINT NOT NULL
);
INSERT INTO schema_id_counter (singleton, last_id) VALUES (1, 0);

CREATE TABLE registry_schemas (
    id              BIGINT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    schema_type     TEXT NOT NULL,
    schema_text     TEXT NOT NULL,
    references_json TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, fingerprint)
);

CREATE TABLE registry_versions (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    subject     TEXT NOT NULL,
    version     BIGINT NOT NULL,
    schema_id   BIGINT NOT NULL REFERENCES registry_schemas(id),
    deleted     BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, subject, version)
);
CREATE INDEX registry_versions_schema ON registry_versions (schema_id);

CREATE TABLE registry_configs (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    subject         TEXT NOT NULL,
    compatibility   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, subject)
);
