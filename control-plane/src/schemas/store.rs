//! The registry's store: schemas by global id, subjects with immutable versions, compatibility
//! levels; every query is scoped to one tenant, so a tenant never sees another's subjects or
//! ids. Registration parses, checks compatibility and writes in one serialised transaction.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::compat::{self, Level};
use super::error::RegistryError;
use super::formats::{self, Parsed, ResolvedRef, SchemaType};
use crate::db::{Db, now_ms};

/// A reference from one schema to a version of another subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SchemaReference {
    /// How the referring schema names it (Avro full name, `$ref` URI, import path).
    pub name: String,
    /// The referenced subject.
    pub subject: String,
    /// The referenced version.
    pub version: i64,
}

/// A schema as submitted: text, format and references.
#[derive(Clone, Debug)]
pub struct SchemaInput {
    /// The format.
    pub kind: SchemaType,
    /// The schema text.
    pub text: String,
    /// Other subjects' versions it uses.
    pub references: Vec<SchemaReference>,
}

/// A registered version of a subject.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaVersion {
    /// The subject.
    pub subject: String,
    /// The version number (1, 2, …; never reused).
    pub version: i64,
    /// The schema's global id.
    pub id: i64,
    /// The format.
    pub schema_type: SchemaType,
    /// The schema text as registered.
    pub schema: String,
    /// Its references.
    pub references: Vec<SchemaReference>,
    /// Whether the version is soft-deleted.
    pub deleted: bool,
}

/// Which version a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionRef {
    /// The newest version that is not deleted (`latest` or `-1`).
    Latest,
    /// A version number.
    Number(i64),
}

impl VersionRef {
    /// Parses `latest`, `-1` or a positive number.
    pub fn parse(text: &str) -> Result<VersionRef, RegistryError> {
        match text {
            "latest" | "-1" => Ok(VersionRef::Latest),
            n => match n.parse::<i64>() {
                Ok(v) if v >= 1 => Ok(VersionRef::Number(v)),
                _ => Err(RegistryError::InvalidVersion(text.to_string())),
            },
        }
    }
}

/// The registry of one installation; every call names the tenant.
#[derive(Clone)]
pub struct Registry {
    db: Db,
}

const VERSION_COLUMNS: &str = "v.subject AS subject, v.version AS version, \
     v.schema_id AS schema_id, s.schema_type AS schema_type, s.schema_text AS schema_text, \
     s.references_json AS references_json, v.deleted AS deleted";

/// A version with its schema, as stored.
#[derive(sqlx::FromRow)]
struct VersionRow {
    subject: String,
    version: i64,
    schema_id: i64,
    schema_type: String,
    schema_text: String,
    /// A JSON array of references.
    references_json: String,
    /// 1 when soft-deleted.
    deleted: i64,
}

/// A schema by id, as stored.
#[derive(sqlx::FromRow)]
struct SchemaRow {
    schema_type: String,
    schema_text: String,
    references_json: String,
}

/// A live version whose schema references others.
#[derive(sqlx::FromRow)]
struct ReferringRow {
    subject: String,
    version: i64,
    references_json: String,
}

fn version_of(row: VersionRow) -> Result<SchemaVersion, RegistryError> {
    Ok(SchemaVersion {
        schema_type: SchemaType::parse(&row.schema_type).map_err(RegistryError::Internal)?,
        references: serde_json::from_str(&row.references_json)
            .map_err(|e| RegistryError::Internal(e.to_string()))?,
        subject: row.subject,
        version: row.version,
        id: row.schema_id,
        schema: row.schema_text,
        deleted: row.deleted != 0,
    })
}

impl Registry {
    /// The registry over `db`.
    pub fn new(db: Db) -> Registry {
        Registry { db }
    }

    /// The subjects of `tenant` with at least one live version (or any version, with
    /// `deleted`), sorted.
    pub async fn subjects(
        &self,
        tenant: &str,
        deleted: bool,
    ) -> Result<Vec<String>, RegistryError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT subject FROM registry_versions WHERE tenant_id = $1 \
             AND (deleted = 0 OR $2 = 1) ORDER BY subject",
        )
        .bind(tenant)
        .bind(i64::from(deleted))
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Every version of `subject` (live ones, or all with `deleted`), oldest first; a subject
    /// with none is not found.
    pub async fn versions(
        &self,
        tenant: &str,
        subject: &str,
        deleted: bool,
    ) -> Result<Vec<SchemaVersion>, RegistryError> {
        let rows: Vec<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM registry_versions v JOIN registry_schemas s \
             ON s.id = v.schema_id WHERE v.tenant_id = $1 AND v.subject = $2 \
             AND (v.deleted = 0 OR $3 = 1) ORDER BY v.version"
        ))
        .bind(tenant)
        .bind(subject)
        .bind(i64::from(deleted))
        .fetch_all(self.db.pool())
        .await?;
        if rows.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        rows.into_iter().map(version_of).collect()
    }

    /// One version of `subject` (`deleted` admits soft-deleted ones).
    pub async fn version(
        &self,
        tenant: &str,
        subject: &str,
        which: VersionRef,
        deleted: bool,
    ) -> Result<SchemaVersion, RegistryError> {
        let all = self.versions(tenant, subject, true).await?;
        if !deleted && all.iter().all(|v| v.deleted) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let found = match which {
            VersionRef::Latest => all.into_iter().rev().find(|v| deleted || !v.deleted),
            VersionRef::Number(n) => all
                .into_iter()
                .find(|v| v.version == n && (deleted || !v.deleted)),
        };
        found.ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.to_string(),
            version: match which {
                VersionRef::Latest => "latest".into(),
                VersionRef::Number(n) => n.to_string(),
            },
        })
    }

    /// The schema with global id `id`, when it belongs to `tenant`.
    pub async fn by_id(&self, tenant: &str, id: i64) -> Result<SchemaInput, RegistryError> {
        let row: SchemaRow = sqlx::query_as(
            "SELECT schema_type, schema_text, references_json FROM registry_schemas \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(RegistryError::SchemaNotFound(id))?;
        Ok(SchemaInput {
            kind: SchemaType::parse(&row.schema_type).map_err(RegistryError::Internal)?,
            text: row.schema_text,
            references: serde_json::from_str(&row.references_json)
                .map_err(|e| RegistryError::Internal(e.to_string()))?,
        })
    }

    /// The subject-versions that use schema `id`.
    pub async fn usages(&self, tenant: &str, id: i64) -> Result<Vec<(String, i64)>, RegistryError> {
        self.by_id(tenant, id).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT subject, version FROM registry_versions WHERE tenant_id = $1 \
             AND schema_id = $2 AND deleted = 0 ORDER BY subject, version",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows)
    }

    /// Parses `input` with its references resolved in `tenant`.
    pub async fn parse(&self, tenant: &str, input: &SchemaInput) -> Result<Parsed, RegistryError> {
        let resolved = self.resolve(tenant, &input.references).await?;
        formats::parse(input.kind, &input.text, &resolved).map_err(RegistryError::InvalidSchema)
    }

    /// `input` as the registry stores it: a Protobuf schema sent as a base64 descriptor becomes
    /// its `.proto` text ([`formats::stored_text`]); anything else is `input` itself.
    pub async fn stored_form(
        &self,
        tenant: &str,
        input: &SchemaInput,
    ) -> Result<SchemaInput, RegistryError> {
        if input.kind != SchemaType::Protobuf {
            return Ok(input.clone());
        }
        let resolved = self.resolve(tenant, &input.references).await?;
        let text = formats::stored_text(input.kind, &input.text, &resolved)
            .unwrap_or_else(|| input.text.clone());
        Ok(SchemaInput {
            text,
            ..input.clone()
        })
    }

    /// The texts of the schemas `references` name, by the names the schema uses for them.
    async fn resolve(
        &self,
        tenant: &str,
        references: &[SchemaReference],
    ) -> Result<Vec<ResolvedRef>, RegistryError> {
        let mut resolved = Vec::new();
        for r in references {
            let v = self
                .version(tenant, &r.subject, VersionRef::Number(r.version), false)
                .await
                .map_err(|e| {
                    RegistryError::InvalidSchema(format!("reference `{}`: {e}", r.name))
                })?;
            resolved.push(ResolvedRef {
                name: r.name.clone(),
                schema: v.schema,
            });
        }
        Ok(resolved)
    }

    fn fingerprint(input: &SchemaInput, parsed: &Parsed) -> String {
        let mut h = Sha256::new();
        h.update(input.kind.as_str());
        h.update([0]);
        h.update(formats::normalized(input.kind, parsed, &input.text));
        h.update([0]);
        h.update(serde_json::to_string(&input.references).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// The live version of `subject` whose schema is `input`, if any (a base64 Protobuf
    /// descriptor finds the `.proto` text it was stored as).
    pub async fn lookup(
        &self,
        tenant: &str,
        subject: &str,
        input: &SchemaInput,
    ) -> Result<SchemaVersion, RegistryError> {
        let stored = self.stored_form(tenant, input).await?;
        self.lookup_stored(tenant, subject, &stored, input).await
    }

    /// [`Registry::lookup`] of `stored`, the stored form of `sent`; a descriptor stored as
    /// base64 (before the registry turned them into text) is found by that base64.
    async fn lookup_stored(
        &self,
        tenant: &str,
        subject: &str,
        stored: &SchemaInput,
        sent: &SchemaInput,
    ) -> Result<SchemaVersion, RegistryError> {
        match self.find(tenant, subject, stored).await {
            Err(RegistryError::SchemaNotFoundInSubject) if stored.text != sent.text => {
                self.find(tenant, subject, sent).await
            }
            found => found,
        }
    }

    /// The live version of `subject` whose schema is `input` exactly as stored, if any.
    async fn find(
        &self,
        tenant: &str,
        subject: &str,
        input: &SchemaInput,
    ) -> Result<SchemaVersion, RegistryError> {
        let parsed = self.parse(tenant, input).await?;
        let fp = Self::fingerprint(input, &parsed);
        let versions = self.versions(tenant, subject, false).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM registry_schemas WHERE tenant_id = $1 AND fingerprint = $2",
        )
        .bind(tenant)
        .bind(&fp)
        .fetch_optional(self.db.pool())
        .await?;
        versions
            .into_iter()
            .rev()
            .find(|v| Some(v.id) == id)
            .ok_or(RegistryError::SchemaNotFoundInSubject)
    }

    /// The compatibility level of `subject`, or the tenant's default when `subject` is `None`
    /// (or has none of its own); `fallback` says whether to fall back.
    pub async fn level(
        &self,
        tenant: &str,
        subject: Option<&str>,
        fallback: bool,
    ) -> Result<Option<Level>, RegistryError> {
        let get = |s: String| async move {
            let level: Option<String> = sqlx::query_scalar(
                "SELECT compatibility FROM registry_configs WHERE tenant_id = $1 AND subject = $2",
            )
            .bind(tenant)
            .bind(s)
            .fetch_optional(self.db.pool())
            .await?;
            level
                .map(|l| Level::parse(&l).map_err(RegistryError::Internal))
                .transpose()
        };
        if let Some(s) = subject {
            let own = get(s.to_string()).await?;
            if own.is_some() || !fallback {
                return Ok(own);
            }
        }
        Ok(Some(get(String::new()).await?.unwrap_or_default()))
    }

    /// Sets the level of `subject` (or the tenant's default).
    pub async fn set_level(
        &self,
        tenant: &str,
        subject: Option<&str>,
        level: Level,
    ) -> Result<(), RegistryError> {
        let subject = subject.unwrap_or("");
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM registry_configs WHERE tenant_id = $1 AND subject = $2")
            .bind(tenant)
            .bind(subject)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO registry_configs (tenant_id, subject, compatibility) VALUES ($1, $2, $3)",
        )
        .bind(tenant)
        .bind(subject)
        .bind(level.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the own level of `subject` (it falls back to the default again).
    pub async fn clear_level(&self, tenant: &str, subject: &str) -> Result<Level, RegistryError> {
        let old = self
            .level(tenant, Some(subject), false)
            .await?
            .ok_or_else(|| RegistryError::SubjectLevelNotFound(subject.to_string()))?;
        sqlx::query("DELETE FROM registry_configs WHERE tenant_id = $1 AND subject = $2")
            .bind(tenant)
            .bind(subject)
            .execute(self.db.writer())
            .await?;
        Ok(old)
    }

    /// The incompatibilities of `input` with `subject` under its level: against `which` alone
    /// when it names a version, against what the level asks (the latest, or all) otherwise. An
    /// unknown subject has nothing to be incompatible with.
    pub async fn incompatibilities(
        &self,
        tenant: &str,
        subject: &str,
        input: &SchemaInput,
        which: Option<VersionRef>,
    ) -> Result<Vec<String>, RegistryError> {
        let input = &self.stored_form(tenant, input).await?;
        let parsed = self.parse(tenant, input).await?;
        let level = self
            .level(tenant, Some(subject), true)
            .await?
            .unwrap_or_default();
        let existing = match which {
            Some(w) => vec![self.version(tenant, subject, w, false).await?],
            None => match self.versions(tenant, subject, false).await {
                Ok(v) => v,
                Err(RegistryError::SubjectNotFound(_)) => Vec::new(),
                Err(e) => return Err(e),
            },
        };
        let mut olds = Vec::new();
        for v in &existing {
            let input = SchemaInput {
                kind: v.schema_type,
                text: v.schema.clone(),
                references: v.references.clone(),
            };
            olds.push((v.version, self.parse(tenant, &input).await?));
        }
        let olds: Vec<(i64, &Parsed)> = olds.iter().map(|(v, p)| (*v, p)).collect();
        Ok(compat::check(level, &parsed, &olds))
    }

    /// Registers `input` under `subject`: the existing version when the subject already has
    /// this schema, else a new version (refused when incompatible). Returns the version. A
    /// Protobuf schema sent as a base64 descriptor is stored as `.proto` text
    /// ([`Registry::stored_form`]).
    /// Concurrent registrations are serialised per tenant; one that finds the subject changed
    /// since its check runs the check again.
    pub async fn register(
        &self,
        tenant: &str,
        subject: &str,
        input: &SchemaInput,
        actor: &str,
    ) -> Result<SchemaVersion, RegistryError> {
        check_subject_name(subject)?;
        // One registration per tenant at a time in this process; the check in `insert`
        // covers other control planes on the same store.
        let lock = tenant_lock(tenant);
        let _held = lock.lock().await;
        let stored = self.stored_form(tenant, input).await?;
        for _ in 0..10 {
            if let Ok(found) = self.lookup_stored(tenant, subject, &stored, input).await {
                return Ok(found);
            }
            let seen = self.newest_version(tenant, subject).await?;
            let parsed = self.parse(tenant, &stored).await?;
            let problems = self
                .incompatibilities(tenant, subject, &stored, None)
                .await?;
            if !problems.is_empty() {
                return Err(RegistryError::Incompatible(problems));
            }
            if let Some(v) = self
                .insert(tenant, subject, &stored, &parsed, actor, seen)
                .await?
            {
                return Ok(v);
            }
        }
        Err(RegistryError::Internal(format!(
            "subject `{subject}` kept changing during registration"
        )))
    }

    async fn newest_version(&self, tenant: &str, subject: &str) -> Result<i64, RegistryError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM registry_versions \
             WHERE tenant_id = $1 AND subject = $2",
        )
        .bind(tenant)
        .bind(subject)
        .fetch_one(self.db.pool())
        .await?)
    }

    /// Writes the new version, unless the subject's newest version is no longer `seen`.
    async fn insert(
        &self,
        tenant: &str,
        subject: &str,
        input: &SchemaInput,
        parsed: &Parsed,
        actor: &str,
        seen: i64,
    ) -> Result<Option<SchemaVersion>, RegistryError> {
        let fp = Self::fingerprint(input, parsed);
        let mut tx = self.db.begin().await?;
        self.db.lock_tenant(&mut tx, tenant).await?;
        let next: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM registry_versions \
             WHERE tenant_id = $1 AND subject = $2",
        )
        .bind(tenant)
        .bind(subject)
        .fetch_one(&mut *tx)
        .await?;
        if next != seen + 1 {
            return Ok(None);
        }
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM registry_schemas WHERE tenant_id = $1 AND fingerprint = $2",
        )
        .bind(tenant)
        .bind(&fp)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = existing {
            // Registered meanwhile under this subject: the caller looks it up again.
            let taken: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM registry_versions WHERE tenant_id = $1 AND subject = $2 \
                 AND schema_id = $3 AND deleted = 0",
            )
            .bind(tenant)
            .bind(subject)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_some() {
                return Ok(None);
            }
        }
        let id: i64 = match existing {
            Some(id) => id,
            None => {
                let id: i64 = sqlx::query_scalar(
                    "UPDATE schema_id_counter SET last_id = last_id + 1 WHERE singleton = 1 \
                     RETURNING last_id",
                )
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO registry_schemas (id, tenant_id, schema_type, schema_text, \
                     references_json, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(tenant)
                .bind(input.kind.as_str())
                .bind(&input.text)
                .bind(serde_json::to_string(&input.references).unwrap_or_else(|_| "[]".into()))
                .bind(&fp)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        sqlx::query(
            "INSERT INTO registry_versions (tenant_id, subject, version, schema_id, deleted, \
             created_at, created_by) VALUES ($1, $2, $3, $4, 0, $5, $6)",
        )
        .bind(tenant)
        .bind(subject)
        .bind(next)
        .bind(id)
        .bind(now_ms())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(SchemaVersion {
            subject: subject.to_string(),
            version: next,
            id,
            schema_type: input.kind,
            schema: input.text.clone(),
            references: input.references.clone(),
            deleted: false,
        }))
    }

    /// Deletes `subject`: soft (versions hidden, numbers kept) or, after a soft delete,
    /// permanent. Returns the version numbers deleted.
    pub async fn delete_subject(
        &self,
        tenant: &str,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i64>, RegistryError> {
        let all = self.versions(tenant, subject, true).await?;
        let live: Vec<i64> = all
            .iter()
            .filter(|v| !v.deleted)
            .map(|v| v.version)
            .collect();
        if permanent && !live.is_empty() {
            return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
        }
        if !permanent && live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
        }
        self.referenced_guard(tenant, subject, None).await?;
        let sql = if permanent {
            "DELETE FROM registry_versions WHERE tenant_id = $1 AND subject = $2"
        } else {
            "UPDATE registry_versions SET deleted = 1 WHERE tenant_id = $1 AND subject = $2"
        };
        sqlx::query(sql)
            .bind(tenant)
            .bind(subject)
            .execute(self.db.writer())
            .await?;
        if permanent {
            self.drop_unused(tenant).await?;
            Ok(all.iter().map(|v| v.version).collect())
        } else {
            Ok(live)
        }
    }

    /// Deletes one version: soft, or permanent after a soft delete.
    pub async fn delete_version(
        &self,
        tenant: &str,
        subject: &str,
        which: VersionRef,
        permanent: bool,
    ) -> Result<i64, RegistryError> {
        let v = self.version(tenant, subject, which, permanent).await?;
        if permanent && !v.deleted {
            return Err(RegistryError::VersionNotSoftDeleted {
                subject: subject.to_string(),
                version: v.version,
            });
        }
        self.referenced_guard(tenant, subject, Some(v.version))
            .await?;
        let sql = if permanent {
            "DELETE FROM registry_versions WHERE tenant_id = $1 AND subject = $2 AND version = $3"
        } else {
            "UPDATE registry_versions SET deleted = 1 WHERE tenant_id = $1 AND subject = $2 \
             AND version = $3"
        };
        sqlx::query(sql)
            .bind(tenant)
            .bind(subject)
            .bind(v.version)
            .execute(self.db.writer())
            .await?;
        if permanent {
            self.drop_unused(tenant).await?;
        }
        Ok(v.version)
    }

    /// Refuses to delete a version another live schema references.
    async fn referenced_guard(
        &self,
        tenant: &str,
        subject: &str,
        version: Option<i64>,
    ) -> Result<(), RegistryError> {
        let rows: Vec<ReferringRow> = sqlx::query_as(
            "SELECT v.subject AS subject, v.version AS version, \
             s.references_json AS references_json FROM registry_versions v \
             JOIN registry_schemas s ON s.id = v.schema_id \
             WHERE v.tenant_id = $1 AND v.deleted = 0 AND s.references_json <> '[]'",
        )
        .bind(tenant)
        .fetch_all(self.db.pool())
        .await?;
        for row in rows {
            let refs: Vec<SchemaReference> =
                serde_json::from_str(&row.references_json).unwrap_or_default();
            if refs
                .iter()
                .any(|r| r.subject == subject && version.is_none_or(|v| v == r.version))
            {
                return Err(RegistryError::ReferenceExists(format!(
                    "{} version {}",
                    row.subject, row.version
                )));
            }
        }
        Ok(())
    }

    async fn drop_unused(&self, tenant: &str) -> Result<(), RegistryError> {
        sqlx::query(
            "DELETE FROM registry_schemas WHERE tenant_id = $1 AND id NOT IN \
             (SELECT schema_id FROM registry_versions WHERE tenant_id = $1)",
        )
        .bind(tenant)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }
}

/// The registration lock of `tenant` in this process.
fn tenant_lock(tenant: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex};
    static LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(tenant.to_string()).or_default().clone()
}

/// A subject name: 1 to 255 printable characters without control characters.
fn check_subject_name(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
        return Err(RegistryError::InvalidSubject(subject.to_string()));
    }
    Ok(())
}
