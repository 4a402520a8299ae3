//! The registry's failures, each with Confluent's numeric `error_code` (the Confluent-compatible
//! API sends them as `{"error_code": …, "message": …}`) and an HTTP status.

use axum::http::StatusCode;

/// Every way a registry operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No credentials, or unknown ones.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's role lacks a permission.
    #[error("your role `{role}` lacks the permission `{permission}`")]
    Forbidden {
        /// The caller's role.
        role: String,
        /// The missing `resource:action`.
        permission: String,
    },
    /// The subject has no (live) version in the caller's tenant.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// The subject exists, the version does not.
    #[error("Version {version} not found for subject '{subject}'.")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The version asked for.
        version: String,
    },
    /// No schema with this id in the caller's tenant.
    #[error("Schema {0} not found")]
    SchemaNotFound(i64),
    /// Lookup by schema found no version with that schema.
    #[error("Schema not found")]
    SchemaNotFoundInSubject,
    /// Soft-deleting a subject that is already soft-deleted.
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// Permanently deleting a subject that was not soft-deleted first.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// Permanently deleting a version that was not soft-deleted first.
    #[error(
        "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
    )]
    VersionNotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i64,
    },
    /// The subject has no compatibility level of its own.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelNotFound(String),
    /// A live schema references what would be deleted.
    #[error("One or more references exist to the schema: {0}")]
    ReferenceExists(String),
    /// The schema does not parse, or a reference does not resolve.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// A version that is neither a positive number nor `latest`.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// A compatibility level not among the seven.
    #[error("Invalid compatibility level: {0}")]
    InvalidLevel(String),
    /// An empty or unprintable subject name.
    #[error("Invalid subject name `{0}`: 1 to 255 characters, no control characters")]
    InvalidSubject(String),
    /// A request body that is not what the endpoint reads.
    #[error("{0}")]
    BadRequest(String),
    /// The schema breaks the subject's compatibility level.
    #[error("Schema being registered is incompatible with an earlier schema for subject: {}", .0.join("; "))]
    Incompatible(Vec<String>),
    /// A store or other internal failure (logged, not sent).
    #[error("{0}")]
    Internal(String),
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        RegistryError::Internal(format!("store: {e}"))
    }
}

impl RegistryError {
    /// HTTP status and Confluent's error code.
    pub fn codes(&self) -> (StatusCode, u32) {
        use RegistryError::*;
        match self {
            Unauthenticated(_) => (StatusCode::UNAUTHORIZED, 40101),
            Forbidden { .. } => (StatusCode::FORBIDDEN, 40301),
            SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            VersionNotFound { .. } => (StatusCode::NOT_FOUND, 40402),
            SchemaNotFound(_) | SchemaNotFoundInSubject => (StatusCode::NOT_FOUND, 40403),
            SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
            SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
            VersionNotSoftDeleted { .. } => (StatusCode::NOT_FOUND, 40407),
            SubjectLevelNotFound(_) => (StatusCode::NOT_FOUND, 40408),
            ReferenceExists(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
            InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            InvalidLevel(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            InvalidSubject(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42208),
            BadRequest(_) => (StatusCode::BAD_REQUEST, 400),
            Incompatible(_) => (StatusCode::CONFLICT, 409),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        }
    }
}

impl From<crate::error::ApiError> for RegistryError {
    fn from(e: crate::error::ApiError) -> Self {
        use crate::error::ApiError;
        match e {
            ApiError::Unauthenticated(m) => RegistryError::Unauthenticated(m),
            ApiError::Forbidden { role, permission } => {
                RegistryError::Forbidden { role, permission }
            }
            other => RegistryError::Internal(other.to_string()),
        }
    }
}
