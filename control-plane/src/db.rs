//! The store's connection: `sqlx::AnyPool`s over SQLite (the embedded default) or PostgreSQL
//! (production), migrated on open. The schema is portable SQL (TEXT ids, BIGINT epoch
//! milliseconds, JSON as TEXT), so every query below runs unchanged on both.
//!
//! Writes are concurrent-safe: on SQLite (WAL mode) every write goes through one writer
//! connection ([`Db::writer`]), so writes are serialised in-process and never meet
//! `database is locked`, while reads use their own pool and never wait for a writer. On
//! PostgreSQL writers take row locks ([`Db::lock_tenant`]) inside their transaction. A write
//! path holds one connection, its transaction's, and never asks for a second.

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

/// Errors of opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
    /// Could not connect.
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        /// The URL without password.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// The database behind the control plane.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    writer: AnyPool,
    backend: Backend,
}

/// Which database the store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Db {
    /// Connects to `url` and applies pending migrations. SQLite files are created when missing.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        };
        let mut url = url.to_string();
        if backend == Backend::Sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        if backend == Backend::Sqlite {
            create_private_file(&url);
        }
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|source| StoreError::Connect {
                url: redact(&url),
                source,
            })?
            .disable_statement_logging();
        let open = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(std::time::Duration::from_secs(60))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            for pragma in [
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA busy_timeout = 10000",
                                "PRAGMA synchronous = NORMAL",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                        }
                        Ok(())
                    })
                })
                .connect_with(options.clone())
        };
        let connect_error = |source| StoreError::Connect {
            url: redact(&url),
            source,
        };
        let (pool, writer) = if backend == Backend::Sqlite {
            let writer = open(1).await.map_err(connect_error)?;
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&writer)
                .await?;
            sqlx::migrate!("./migrations").run(&writer).await?;
            (open(4).await.map_err(connect_error)?, writer)
        } else {
            let pool = open(10).await.map_err(connect_error)?;
            sqlx::migrate!("./migrations").run(&pool).await?;
            (pool.clone(), pool)
        };
        Ok(Db {
            pool,
            writer,
            backend,
        })
    }

    /// The SQLite URL of a file.
    pub fn sqlite_url(path: &Path) -> String {
        format!("sqlite://{}", path.display())
    }

    /// The pool for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for writes: on SQLite one connection, so writes queue in-process instead of
    /// failing with `database is locked`; on PostgreSQL the same pool as reads. A transaction
    /// from here must do all its reads through itself, never through [`Db::pool`] or a second
    /// writer connection.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Starts a write transaction (on the writer).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        self.writer.begin().await
    }

    /// Serialises the writes of one tenant's resources inside `tx`: on PostgreSQL a row lock
    /// on the tenant held until the transaction ends (so version numbers and quota counts
    /// read in the transaction stay true until it commits); on SQLite nothing more is needed,
    /// the single writer already serialises every write.
    pub async fn lock_tenant(
        &self,
        tx: &mut sqlx::AnyConnection,
        tenant_id: &str,
    ) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
                .bind(tenant_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Creates the SQLite file of `url` readable by its owner only (0600), when missing.
fn create_private_file(url: &str) {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    // An existing file is left as it is; a failure here shows up when sqlx opens it.
    let _ = options.open(path);
}

/// A URL with its password replaced, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Now, in Unix epoch milliseconds (the store keeps them as `BIGINT`).
pub fn now_ms() -> i64 {
    i64::try_from(weir_pipelines::fleet::now_ms()).unwrap_or(i64::MAX)
}

/// Epoch milliseconds as RFC 3339 text.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
