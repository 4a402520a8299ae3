-- Quotas that NATS enforces on a tenant's account (operator mode): JetStream storage bytes
-- and client connections.
ALTER TABLE quotas ADD COLUMN max_storage_bytes BIGINT;
ALTER TABLE quotas ADD COLUMN max_connections BIGINT;
