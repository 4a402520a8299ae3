//! Tenants' ingest quotas in one worker: one `IngestLimiter` per tenant, shared by every
//! pipeline of the tenant that this worker runs.
//!
//! With several workers the tenant's limit is shared: each worker paces the tenant at
//! `max_ingest_rate / n`, where `n` is the number of live workers (fresh heartbeat, including
//! this one) that run at least one pipeline of the tenant, as read from the heartbeat bucket
//! every heartbeat. Until the first heartbeats are exchanged (≤ one heartbeat interval) a
//! new worker paces at the full limit, so the fleet may briefly run ahead of it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::ratelimit::IngestLimiter;

#[derive(Debug)]
struct TenantLimit {
    limit: u64,
    workers: usize,
    limiter: Arc<IngestLimiter>,
}

/// The limiters of the tenants that have an ingest quota.
#[derive(Debug, Clone, Default)]
pub struct TenantLimiters {
    inner: Arc<Mutex<BTreeMap<String, TenantLimit>>>,
}

impl TenantLimiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TenantLimit>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limiter of `tenant` for a quota of `limit` messages per second (updating the
    /// limit when it changed).
    pub fn limiter(&self, tenant: &str, limit: u64) -> Arc<IngestLimiter> {
        let mut map = self.lock();
        let entry = map
            .entry(tenant.to_string())
            .or_insert_with(|| TenantLimit {
                limit,
                workers: 1,
                limiter: Arc::new(IngestLimiter::new(limit as f64)),
            });
        if entry.limit != limit {
            entry.limit = limit;
            entry
                .limiter
                .set_rate(limit as f64 / entry.workers.max(1) as f64);
        }
        entry.limiter.clone()
    }

    /// Forgets the limiter of `tenant` (its quota was lifted).
    pub fn remove(&self, tenant: &str) {
        self.lock().remove(tenant);
    }

    /// Tenants with a limiter.
    pub fn tenants(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Shares `tenant`'s limit among `workers` live workers.
    pub fn set_workers(&self, tenant: &str, workers: usize) {
        if let Some(entry) = self.lock().get_mut(tenant) {
            let workers = workers.max(1);
            if entry.workers != workers {
                tracing::info!(
                    tenant,
                    workers,
                    limit = entry.limit,
                    rate = entry.limit as f64 / workers as f64,
                    "sharing the tenant's ingest quota"
                );
                entry.workers = workers;
                entry.limiter.set_rate(entry.limit as f64 / workers as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_divided_by_the_workers() {
        let limiters = TenantLimiters::default();
        let limiter = limiters.limiter("acme", 1_000);
        assert_eq!(limiter.rate(), 1_000.0);
        limiters.set_workers("acme", 4);
        assert_eq!(limiter.rate(), 250.0);
        let same = limiters.limiter("acme", 2_000);
        assert!(Arc::ptr_eq(&limiter, &same));
        assert_eq!(limiter.rate(), 500.0);
        limiters.set_workers("unknown", 3);
        assert_eq!(limiters.tenants(), vec!["acme".to_string()]);
    }
}
