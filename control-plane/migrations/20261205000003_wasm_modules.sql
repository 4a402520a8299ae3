-- WebAssembly modules (issue 19): one row per uploaded version; the bytes live in the
-- `weir_modules` object bucket (`<tenant>/<name>/<version>`). Portable SQL: runs unchanged on
-- SQLite and PostgreSQL.

CREATE TABLE wasm_modules (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    functions   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);
