-- Emails are unique per tenant, no longer across Weir: a tenant can neither learn that an
-- address is a user of another tenant (409 on create) nor take an address first so that the
-- other tenant cannot use it. Login tries the password against every account of the email.
--
-- Portable SQL: runs unchanged on SQLite and PostgreSQL. SQLite cannot drop the column's
-- UNIQUE constraint in place, so `users` is rebuilt. Dropping a table with foreign keys on is
-- an implicit DELETE, whose ON DELETE CASCADE would empty `api_keys` and `sessions`; so the
-- two child tables are copied aside and dropped first, and all three are rebuilt with the same
-- columns, constraints and indexes as before (20261125000001_init.sql), then refilled.

CREATE TABLE users_copy AS SELECT * FROM users;
CREATE TABLE api_keys_copy AS SELECT * FROM api_keys;
CREATE TABLE sessions_copy AS SELECT * FROM sessions;

DROP TABLE sessions;
DROP TABLE api_keys;
DROP TABLE users;

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    password_hash   TEXT,
    role            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_login_at   BIGINT,
    UNIQUE (tenant_id, email)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    revoked_at      BIGINT,
    last_used_at    BIGINT
);

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    family_id           TEXT NOT NULL,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_hash         TEXT NOT NULL UNIQUE,
    refresh_hash        TEXT NOT NULL UNIQUE,
    access_expires_at   BIGINT NOT NULL,
    refresh_expires_at  BIGINT NOT NULL,
    rotated_at          BIGINT,
    revoked_at          BIGINT,
    created_at          BIGINT NOT NULL
);
CREATE INDEX sessions_family ON sessions (family_id);

INSERT INTO users (id, tenant_id, email, password_hash, role, created_at, last_login_at)
    SELECT id, tenant_id, email, password_hash, role, created_at, last_login_at FROM users_copy;
INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash, created_at, expires_at,
                      revoked_at, last_used_at)
    SELECT id, tenant_id, user_id, name, prefix, key_hash, created_at, expires_at, revoked_at,
           last_used_at FROM api_keys_copy;
INSERT INTO sessions (id, family_id, tenant_id, user_id, access_hash, refresh_hash,
                      access_expires_at, refresh_expires_at, rotated_at, revoked_at, created_at)
    SELECT id, family_id, tenant_id, user_id, access_hash, refresh_hash, access_expires_at,
           refresh_expires_at, rotated_at, revoked_at, created_at FROM sessions_copy;

DROP TABLE sessions_copy;
DROP TABLE api_keys_copy;
DROP TABLE users_copy;
