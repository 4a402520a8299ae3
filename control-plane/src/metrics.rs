//! `GET /metrics` (no credentials, like `/healthz`): the control plane's own metrics in the
//! Prometheus/OpenMetrics text format — API requests by method and status, and the fleet's
//! workers and pipeline states from heartbeats (no tenant or pipeline names) — followed by
//! those of any in-process worker registered with [`add_source`] (`weir dev`).

use std::sync::{LazyLock, Mutex};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: String,
}

/// Labels of a state count (`alive`/`dead`; `running`/`paused`/…).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// Requests served by this process, by method and status.
static REQUESTS: LazyLock<Family<RequestLabels, Counter>> = LazyLock::new(Family::default);

type Source = Box<dyn Fn() -> String + Send + Sync>;

/// Other metrics served with the control plane's (an in-process worker's).
static SOURCES: LazyLock<Mutex<Vec<Source>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// Adds metrics served after the control plane's: `source` returns them in the OpenMetrics
/// text format (its `# EOF` line is dropped). `weir dev` adds its in-process worker's.
pub fn add_source(source: impl Fn() -> String + Send + Sync + 'static) {
    SOURCES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(source));
}

/// Middleware counting every request by method and status.
pub async fn count(req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let response = next.run(req).await;
    REQUESTS
        .get_or_create(&RequestLabels {
            method,
            status: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

/// Prometheus metrics of the control plane (and of an in-process worker).
#[utoipa::path(get, path = "/metrics", tag = "meta", security(()),
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
pub async fn handler(State(state): State<AppState>) -> Response {
    let mut registry = Registry::default();
    registry.register(
        "weir_api_requests",
        "API requests served, by method and status",
        REQUESTS.clone(),
    );
    if let Ok(nats) = state.nats()
        && let Ok(heartbeats) = crate::status::heartbeats(nats).await
    {
        let now = weir_pipelines::fleet::now_ms();
        let workers = Family::<StateLabels, Gauge>::default();
        let pipelines = Family::<StateLabels, Gauge>::default();
        for state in ["alive", "dead"] {
            let _ = workers.get_or_create(&StateLabels {
                state: state.into(),
            });
        }
        for hb in &heartbeats {
            let alive =
                now.saturating_sub(hb.sent_at_ms) <= weir_pipelines::fleet::HEARTBEAT_TIMEOUT_MS;
            workers
                .get_or_create(&StateLabels {
                    state: if alive { "alive" } else { "dead" }.into(),
                })
                .inc();
            if alive {
                for p in &hb.pipelines {
                    pipelines
                        .get_or_create(&StateLabels {
                            state: p.state.clone(),
                        })
                        .inc();
                }
            }
        }
        registry.register(
            "weir_fleet_workers",
            "Workers that sent a heartbeat, alive or not (heartbeat too old)",
            workers,
        );
        registry.register(
            "weir_fleet_pipeline_instances",
            "Pipelines run by live workers, by the state they report (one per worker)",
            pipelines,
        );
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut text = without_eof(text);
    for source in SOURCES.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        text.push_str(&without_eof(source()));
    }
    text.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// OpenMetrics text without its closing `# EOF` line, so that several can be joined.
fn without_eof(text: String) -> String {
    match text.strip_suffix("# EOF\n") {
        Some(body) => body.to_string(),
        None => text,
    }
}
