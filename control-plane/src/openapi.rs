//! The OpenAPI 3 document's header and finishing touches (its operations come from the
//! handlers' `#[utoipa::path]` annotations through the route table), and the health endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::state::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`weir_…`) or an access token (`wat_…`)"))
                    .build(),
            ),
        );
    }
}

/// Makes every `operationId` unique, as OpenAPI requires (utoipa takes the handler's function
/// name, and many modules have a `list` or a `get`): a name used once stays; a repeated one is
/// prefixed with the resource path (`/api/v1/audit` + `list` → `audit_list`).
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use std::collections::HashMap;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                if let Some(id) = &op.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let resource: String = path
                .trim_start_matches("/api/v1/")
                .split('/')
                .filter(|seg| !seg.starts_with('{'))
                .collect::<Vec<_>>()
                .join("_")
                .replace(['.', '-'], "_");
            for op in operations(item) {
                if let Some(id) = &op.operation_id
                    && seen.get(id).copied().unwrap_or(0) > 1
                {
                    op.operation_id = Some(format!("{resource}_{id}"));
                }
            }
        }
    }
}

/// Every error of the API is `application/problem+json` ([`crate::error::Problem`]): error
/// responses the handlers document as JSON are stated with that media type, and every
/// operation also documents 400 (malformed request), 401 and 403 (where credentials are
/// needed), and a `default` problem for the remaining statuses (404, 409, 413, 415, 422, 429,
/// 5xx) that any operation can meet.
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        const PROBLEM: &str = crate::error::PROBLEM_JSON;
        let problem = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        PROBLEM,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
                for response in op.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        let is_problem = response.content.get("application/json").is_some_and(
                            |c| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem")),
                        );
                        if is_problem
                            && let Some(content) = response.content.shift_remove("application/json")
                        {
                            response.content.insert(PROBLEM.to_string(), content);
                        }
                    }
                }
                let responses = &mut op.responses.responses;
                responses.entry("400".into()).or_insert_with(|| {
                    problem("Malformed request: unreadable body, unknown field or bad parameter")
                });
                if !public {
                    responses.entry("401".into()).or_insert_with(|| {
                        problem("Missing, unknown, expired or revoked credentials")
                    });
                    responses.entry("403".into()).or_insert_with(|| {
                        problem("The caller's role lacks a permission this operation needs")
                    });
                }
                responses.entry("default".into()).or_insert_with(|| {
                    problem("Any other error, as a problem with a stable `code`")
                });
            }
        }
    }
}

/// The API document's header: title, description, security and shared components. The
/// operations come from the route table (`routes::api_document`), which then calls
/// [`finish`].
#[derive(OpenApi)]
#[openapi(
    info(title = "Weir control plane", version = "1",
         description = "Pipelines, deployments, fleet status, DLQs, streams, tenants, users, API keys, quotas, secrets and audit log of Weir. \
                        Errors are application/problem+json with a stable `code`."),
    security(("bearer" = [])),
    components(schemas(crate::error::Problem))
)]
pub struct ApiDoc;

/// Health of the server and its store.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub store: String,
}

/// Liveness and store health (no credentials needed).
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let store = match state.db().backend() {
        crate::db::Backend::Sqlite => "sqlite",
        crate::db::Backend::Postgres => "postgres",
    };
    let ok = sqlx::query("SELECT 1")
        .execute(state.db().pool())
        .await
        .is_ok();
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ok { "ok" } else { "degraded" }.into(),
            store: store.into(),
        }),
    )
}

/// Completes a document whose operations are all in: the bearer scheme, unique operation ids
/// and the problem responses every operation can give.
pub fn finish(doc: &mut utoipa::openapi::OpenApi) {
    BearerAuth.modify(doc);
    UniqueOperationIds.modify(doc);
    ProblemResponses.modify(doc);
}

/// The operations of a path item (the methods the API uses).
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
