//! The shared state of every handler: the store, the settings, the login limiter, the
//! secret cipher and, when configured, the NATS connection of the fleet.

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::SecretCipher;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::login_limit::{LoginLimiter, LoginLimits};
use crate::nats::{Nats, TenantNats};
use crate::rates::RateTracker;

/// Tunables of the API.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest request body in bytes (413 above).
    pub body_limit: usize,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// Memory of argon2id password hashing, KiB (default 19456, the argon2 recommendation).
    pub argon2_memory_kib: u32,
    /// Passes of argon2id password hashing (default 2).
    pub argon2_iterations: u32,
    /// The login limiter's limits (per email and address, per account, per address).
    pub login_limits: LoginLimits,
    /// AES-256-GCM key for secrets at rest.
    pub secret_key: [u8; 32],
    /// Whether tenants may be created on a NATS without accounts, where they share one
    /// namespace (`weir serve --allow-shared-nats`). Only `weir serve` defaults it to false.
    pub allow_shared_nats: bool,
}

impl Settings {
    /// Defaults with the given secret key: 1 MiB bodies, 15 min access tokens, 7 day refresh
    /// tokens, 5 failed logins per minute per email and address, then backoff per account (after 10)
    /// and per address (after 20).
    pub fn new(secret_key: [u8; 32]) -> Self {
        Self {
            body_limit: 1024 * 1024,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            login_limits: LoginLimits::default(),
            argon2_memory_kib: argon2::Params::DEFAULT_M_COST,
            argon2_iterations: argon2::Params::DEFAULT_T_COST,
            secret_key,
            allow_shared_nats: true,
        }
    }
}

struct Inner {
    db: Db,
    settings: Settings,
    login_limiter: LoginLimiter,
    cipher: SecretCipher,
    nats: Option<Nats>,
    rates: RateTracker,
    quality: crate::quality_rates::QualityHistory,
    anonymous_audit: crate::audit_budget::AnonymousAudit,
    dummy_password_hash: std::sync::OnceLock<String>,
}

/// Cheap to clone; shared by every request.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// State over an opened store.
    pub fn new(db: Db, settings: Settings) -> Self {
        Self::with_nats(db, settings, None)
    }

    /// State over an opened store and, when given, a NATS connection (deployments, status,
    /// DLQs and the NATS views need one; without it they answer 503 `nats_unavailable`).
    pub fn with_nats(db: Db, settings: Settings, nats: Option<Nats>) -> Self {
        Self(Arc::new(Inner {
            login_limiter: LoginLimiter::new(settings.login_limits.clone()),
            cipher: SecretCipher::new(&settings.secret_key),
            db,
            settings,
            nats,
            rates: RateTracker::default(),
            quality: crate::quality_rates::QualityHistory::default(),
            anonymous_audit: crate::audit_budget::AnonymousAudit::default(),
            dummy_password_hash: std::sync::OnceLock::new(),
        }))
    }

    /// The NATS connection, or 503 `nats_unavailable` when the server runs without one.
    pub fn nats(&self) -> ApiResult<&Nats> {
        self.0.nats.as_ref().ok_or(ApiError::NatsUnavailable)
    }

    /// A NATS connection inside the caller's tenant account (operator mode), or the shared
    /// one on a plain server; 503 `nats_unavailable` without NATS.
    pub async fn tenant_nats(&self, caller: &crate::caller::Caller) -> ApiResult<TenantNats> {
        self.nats()?
            .tenant(&caller.tenant_id, &caller.tenant_name)
            .await
    }

    /// The per-worker counter samples that rates are computed from.
    pub fn rates(&self) -> &RateTracker {
        &self.0.rates
    }

    /// The per-worker samples of data-quality counts that windowed pass rates come from.
    pub fn quality_history(&self) -> &crate::quality_rates::QualityHistory {
        &self.0.quality
    }

    /// The hash unknown emails are verified against (made once, see `auth::warm_up`).
    pub fn dummy_password_hash(&self) -> &std::sync::OnceLock<String> {
        &self.0.dummy_password_hash
    }

    /// The budget of audit rows for anonymous failures.
    pub fn anonymous_audit(&self) -> &crate::audit_budget::AnonymousAudit {
        &self.0.anonymous_audit
    }

    /// The store.
    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The login limiter.
    pub fn login_limiter(&self) -> &LoginLimiter {
        &self.0.login_limiter
    }

    /// The secret cipher.
    pub fn cipher(&self) -> &SecretCipher {
        &self.0.cipher
    }
}
