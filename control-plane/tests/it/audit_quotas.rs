//! Quotas refuse what would exceed them (429 naming quota, limit and usage) and change nothing;
//! the audit log records every mutating call and exports JSON lines and CSV.

use axum::http::Method;
use serde_json::json;

use crate::support::{ADMIN_KEY, TestApp, pipeline_yaml, stream_yaml};

#[tokio::test]
async fn quotas_refuse_what_exceeds_them() {
    let t = TestApp::sqlite().await;
    let (id, k) = t.tenant("small").await;
    t.json(
        Method::PUT,
        &format!("/api/v1/tenants/{id}/quotas"),
        ADMIN_KEY,
        json!({"max_pipelines": 2, "max_parallelism": 5, "max_streams": 1,
               "max_message_bytes": 65536, "max_ingest_rate": 100}),
    )
    .await
    .ok();
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        &k,
        &pipeline_yaml("a", "true", 3),
    )
    .await
    .ok();
    // Parallelism: 3 + 3 > 5.
    let p = t
        .yaml(
            Method::POST,
            "/api/v1/pipelines",
            &k,
            &pipeline_yaml("b", "true", 3),
        )
        .await
        .problem(429, "quota_exceeded");
    assert_eq!(p["quota"], "max_parallelism");
    assert_eq!(p["limit"], 5);
    assert_eq!(p["usage"], 3);
    assert_eq!(p["requested"], 6);
    // Raising a pipeline's parallelism counts too.
    t.yaml(
        Method::PUT,
        "/api/v1/pipelines/a",
        &k,
        &pipeline_yaml("a", "true", 6),
    )
    .await
    .problem(429, "quota_exceeded");
    t.yaml(
        Method::PUT,
        "/api/v1/pipelines/a",
        &k,
        &pipeline_yaml("a", "true", 5),
    )
    .await
    .ok();
    t.yaml(
        Method::PUT,
        "/api/v1/pipelines/a",
        &k,
        &pipeline_yaml("a", "true", 1),
    )
    .await
    .ok();
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        &k,
        &pipeline_yaml("b", "true", 1),
    )
    .await
    .ok();
    // Count.
    let p = t
        .yaml(
            Method::POST,
            "/api/v1/pipelines",
            &k,
            &pipeline_yaml("c", "true", 1),
        )
        .await
        .problem(429, "quota_exceeded");
    assert_eq!(p["quota"], "max_pipelines");
    assert!(p["detail"].as_str().unwrap().contains("limit 2"));
    // Streams.
    t.yaml(
        Method::PUT,
        "/api/v1/streams/ONE",
        &k,
        &stream_yaml("ONE", "one.>"),
    )
    .await
    .ok();
    let p = t
        .yaml(
            Method::PUT,
            "/api/v1/streams/TWO",
            &k,
            &stream_yaml("TWO", "two.>"),
        )
        .await
        .problem(429, "quota_exceeded");
    assert_eq!(p["quota"], "max_streams");

    // Nothing over quota was saved; usage says so.
    let usage = t.get("/api/v1/quotas/usage", &k).await.ok();
    let q = |name: &str| {
        usage["quotas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        q("max_pipelines"),
        json!({"name": "max_pipelines", "limit": 2, "usage": 2})
    );
    assert_eq!(
        q("max_parallelism"),
        json!({"name": "max_parallelism", "limit": 5, "usage": 2})
    );
    assert_eq!(
        q("max_streams"),
        json!({"name": "max_streams", "limit": 1, "usage": 1})
    );
    assert_eq!(q("max_message_bytes")["limit"], 65536);
    assert_eq!(q("max_ingest_rate")["limit"], 100);
    t.get("/api/v1/pipelines/c", &k)
        .await
        .problem(404, "not_found");
    let versions = t.get("/api/v1/pipelines/a/versions", &k).await.ok();
    assert_eq!(versions.as_array().unwrap().len(), 3);
    // Negative limits are refused.
    t.json(
        Method::PUT,
        &format!("/api/v1/tenants/{id}/quotas"),
        ADMIN_KEY,
        json!({"max_pipelines": -1}),
    )
    .await
    .problem(422, "invalid_value");
}

#[tokio::test]
async fn every_mutation_is_audited_and_exportable() {
    let t = TestApp::sqlite().await;
    let k = ADMIN_KEY;
    let start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        k,
        &pipeline_yaml("p", "true", 1),
    )
    .await
    .ok();
    t.yaml(
        Method::PUT,
        "/api/v1/pipelines/p",
        k,
        &pipeline_yaml("p", "false", 1),
    )
    .await
    .ok();
    t.yaml(Method::POST, "/api/v1/pipelines", k, "nonsense: [")
        .await
        .problem(422, "invalid_spec");
    let (_, viewer) = t.user_with_key(k, "viewer@weir.test", "viewer").await;
    t.delete("/api/v1/pipelines/p", &viewer)
        .await
        .problem(403, "forbidden");
    t.delete("/api/v1/pipelines/p", k).await.ok();
    // Reads are not audited.
    t.get("/api/v1/pipelines", k).await.ok();

    let page = t
        .get(
            &format!("/api/v1/audit?from={}", start.replace('+', "%2B")),
            k,
        )
        .await
        .ok();
    let items = page["items"].as_array().unwrap();
    let summary: Vec<(String, String, String)> = items
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let admin = "admin@weir.local".to_string();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        summary,
        vec![
            s(&admin, "pipelines.create", "success"),
            s(&admin, "pipelines.update", "success"),
            s(&admin, "pipelines.create", "failed"),
            s(&admin, "users.create", "success"),
            s(&admin, "api-keys.create", "success"),
            s("viewer@weir.test", "pipelines.delete", "denied"),
            s(&admin, "pipelines.delete", "success"),
        ]
    );
    let update = &items[1];
    assert!(
        update["diff"]
            .as_str()
            .unwrap()
            .contains("+    filter: 'false'"),
        "{update}"
    );
    assert_eq!(update["resource"], "/api/v1/pipelines/p");
    assert_eq!(update["status"], 200);
    assert!(update["request_id"].as_str().is_some_and(|r| r.len() >= 32));
    assert_eq!(update["source"], "unknown");
    assert!(
        items[6]["diff"]
            .as_str()
            .unwrap()
            .contains("-kind: Pipeline")
    );

    // Filters.
    let by_actor = t.get("/api/v1/audit?actor=viewer@weir.test", k).await.ok();
    assert_eq!(by_actor["items"].as_array().unwrap().len(), 1);
    let by_action = t.get("/api/v1/audit?action=pipelines.create", k).await.ok();
    assert_eq!(by_action["items"].as_array().unwrap().len(), 2);
    let future = t
        .get("/api/v1/audit?from=2999-01-01T00:00:00Z", k)
        .await
        .ok();
    assert!(future["items"].as_array().unwrap().is_empty());
    let past = t.get("/api/v1/audit?to=2000-01-01T00:00:00Z", k).await.ok();
    assert!(past["items"].as_array().unwrap().is_empty());
    t.get("/api/v1/audit?from=yesterday", k)
        .await
        .problem(400, "bad_query");
    let paged = t.get("/api/v1/audit?limit=3", k).await.ok();
    assert_eq!(paged["items"].as_array().unwrap().len(), 3);
    let cursor = paged["next_cursor"].as_str().unwrap();
    let rest = t
        .get(&format!("/api/v1/audit?cursor={cursor}"), k)
        .await
        .ok();
    assert_eq!(rest["items"].as_array().unwrap().len(), items.len() - 3);

    // Exports.
    let jsonl = t.get("/api/v1/audit?format=jsonl", k).await;
    assert_eq!(jsonl.content_type, "application/x-ndjson");
    let lines: Vec<serde_json::Value> = jsonl
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), items.len());
    assert_eq!(lines[5]["outcome"], "denied");
    let csv = t.get("/api/v1/audit?format=csv", k).await;
    assert_eq!(csv.content_type, "text/csv");
    assert!(
        csv.text
            .starts_with("id,at,actor,action,resource,outcome,status,request_id,source,diff\n")
    );
    assert!(
        csv.text
            .contains(",viewer@weir.test,pipelines.delete,/api/v1/pipelines/p,denied,403,")
    );
    // Multi-line diffs are quoted, so the CSV has one record per event; a leading `-` (as
    // any formula character) gets a `'` so that spreadsheets do not evaluate it.
    assert!(csv.text.contains(",\"'---"));
}
