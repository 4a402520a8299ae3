//! WebAssembly modules through the API on a real nats-server: versioned uploads checked
//! against the batch ABI (not WASM, missing export, forbidden import, too large → 422),
//! viewers cannot upload, tenant B sees and deploys nothing of tenant A's, concurrent uploads
//! get distinct versions, the bytes land in the `weir_modules` bucket, and deploying pins a
//! `wasm` node to a version.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

use crate::support::{Reply, TestApp, stream_yaml};

fn guest(name: &str) -> Vec<u8> {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm");
    BUILT.get_or_init(|| {
        let ok = std::process::Command::new(root.join("build.sh"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "wasm/build.sh failed");
    });
    std::fs::read(root.join(format!("out/{name}.wasm"))).expect("guest built")
}

async fn upload(t: &TestApp, key: &str, path: &str, bytes: Vec<u8>) -> Reply {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/wasm")
        .header(header::CONTENT_LENGTH, bytes.len())
        .body(Body::from(bytes))
        .unwrap();
    t.send(req).await
}

fn wasm_pipeline(module: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: udf }}
spec:
  source: {{ stream: ORDERS, subjects: ["orders.new"] }}
  nodes:
    - id: udf
      wasm: {{ module: {module}, function: noop }}
      next: out
    - id: out
      publish: {{ subject: orders.done }}
"#
    )
}

#[tokio::test]
async fn modules_on_sqlite() {
    scenario(&TestApp::sqlite_nats().await).await;
}

#[tokio::test]
async fn modules_on_postgres() {
    scenario(&TestApp::postgres_nats().await).await;
}

async fn scenario(t: &TestApp) {
    let (_, a) = t.tenant("mod-a").await;
    let (_, b) = t.tenant("mod-b").await;
    let (_, viewer) = t.user_with_key(&a, "viewer@mod-a.test", "viewer").await;
    let traps = guest("weir-test-traps");

    let v1 = upload(
        t,
        &a,
        "/api/v1/modules/traps?functions=noop,unreachable",
        traps.clone(),
    )
    .await;
    assert_eq!(v1.status.as_u16(), 201, "{}", v1.text);
    let v1 = v1.json();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["size"], traps.len());
    assert!(
        v1["functions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "spin"),
        "{v1}"
    );
    let v2 = upload(t, &a, "/api/v1/modules/traps", traps.clone())
        .await
        .ok();
    assert_eq!(v2["version"], 2);

    // The weakest role that must fail: a viewer reads but cannot upload or delete.
    upload(t, &viewer, "/api/v1/modules/traps", traps.clone())
        .await
        .problem(403, "forbidden");
    t.delete("/api/v1/modules/traps", &viewer)
        .await
        .problem(403, "forbidden");
    assert_eq!(
        t.get("/api/v1/modules", &viewer)
            .await
            .ok()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Upload checks, each a 422 with the reason.
    let checks: [(&str, Vec<u8>, &str); 4] = [
        (
            "/api/v1/modules/junk",
            b"MZ\x90\0not wasm".to_vec(),
            "not a WebAssembly module",
        ),
        (
            "/api/v1/modules/traps?functions=nope",
            traps.clone(),
            "missing export `nope`",
        ),
        (
            "/api/v1/modules/sneaky",
            guest("weir-test-forbidden"),
            "forbidden import `env.read_host_file`",
        ),
        ("/api/v1/modules/huge", vec![0u8; 5 << 20], "too large"),
    ];
    for (path, bytes, reason) in checks {
        let p = upload(t, &a, path, bytes)
            .await
            .problem(422, "invalid_value");
        assert!(
            p["detail"].as_str().unwrap().contains(reason),
            "{path}: {p}"
        );
    }
    upload(t, &a, "/api/v1/modules/Bad_Name", traps.clone())
        .await
        .problem(422, "invalid_value");

    // Tenant B sees none of it.
    assert_eq!(t.get("/api/v1/modules", &b).await.ok(), json!([]));
    t.get("/api/v1/modules/traps", &b)
        .await
        .problem(404, "not_found");
    t.delete("/api/v1/modules/traps", &b)
        .await
        .problem(404, "not_found");

    // Concurrent uploads get distinct versions.
    let uploads = (0..4).map(|_| upload(t, &a, "/api/v1/modules/traps", traps.clone()));
    let mut versions: Vec<u64> = futures::future::join_all(uploads)
        .await
        .iter()
        .map(|r| r.ok()["version"].as_u64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [3, 4, 5, 6]);

    // The bytes are where workers fetch them, under the tenant's name.
    let (v, stored) = weir_connectors::modules::fetch(t.nats().js(), "mod-a", "traps", None)
        .await
        .unwrap();
    assert_eq!((v, stored.as_ref()), (6, traps.as_slice()));

    // Deploying pins the module version; tenant B cannot deploy a pipeline naming A's module.
    for key in [&a, &b] {
        t.yaml(
            Method::PUT,
            "/api/v1/streams/ORDERS",
            key,
            &stream_yaml("ORDERS", "orders.>"),
        )
        .await
        .ok();
        t.yaml(
            Method::POST,
            "/api/v1/pipelines",
            key,
            &wasm_pipeline("traps"),
        )
        .await
        .ok();
    }
    t.json(Method::POST, "/api/v1/pipelines/udf/deploy", &a, json!({}))
        .await
        .ok();
    let record: weir_connectors::fleet::Deployment = serde_json::from_slice(
        &t.nats()
            .deployments()
            .get("mod-a.udf")
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        record.spec["spec"]["nodes"][0]["wasm"]["version"], 6,
        "{}",
        record.spec
    );
    let p = t
        .json(Method::POST, "/api/v1/pipelines/udf/deploy", &b, json!({}))
        .await
        .problem(422, "invalid_value");
    assert!(
        p["detail"].as_str().unwrap().contains("no module `traps`"),
        "{p}"
    );

    // Delete one version, then all.
    assert_eq!(
        t.delete("/api/v1/modules/traps?version=6", &a)
            .await
            .status
            .as_u16(),
        204
    );
    let left = t.get("/api/v1/modules/traps", &a).await.ok();
    assert_eq!(left.as_array().unwrap().len(), 5);
    assert_eq!(
        t.delete("/api/v1/modules/traps", &a).await.status.as_u16(),
        204
    );
    t.get("/api/v1/modules/traps", &a)
        .await
        .problem(404, "not_found");
    assert!(
        weir_connectors::modules::fetch(t.nats().js(), "mod-a", "traps", None)
            .await
            .is_err()
    );
}
