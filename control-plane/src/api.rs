//! The API's request and response bodies in one place, for clients in Rust (the `weir` CLI
//! uses these, so its requests and the replies it reads are the server's own types and cannot
//! drift from them). The handlers define them next to their code; this module gathers them.

pub use crate::deployments::{DeployRequest, DeploymentInfo, RollbackRequest};
pub use crate::dlq::{
    DlqEntry, DlqGroup, DlqList, DlqMessage, PurgeResult, RedriveFailure, RedriveRequest,
    RedriveResult, Redriven,
};
pub use crate::error::Problem;
pub use crate::login::{LoginRequest, Me, TokenPair};
pub use crate::pipelines::{
    ApplyResult, PipelineDetail, PipelinePage, PipelineSummary, ValidationResult, VersionDiff,
    VersionInfo,
};
pub use crate::quality::{QualityRuleStatus, QualityStatus};
pub use crate::schemas::api::{CheckResult, Deleted, SchemaWrite, SubjectSummary};
pub use crate::schemas::compat::Level;
pub use crate::schemas::formats::SchemaType;
pub use crate::schemas::infer::InferredSchema;
pub use crate::schemas::store::SchemaReference;
pub use crate::schemas::store::SchemaVersion;
pub use crate::status::{
    Counters, LastError, PipelineStatus, Rates, WorkerInfo, WorkerPipeline, WorkerPipelineBrief,
};
pub use crate::streams::StreamInfo;
