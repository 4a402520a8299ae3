//! The schema registry through its Confluent-compatible API (`/schema-registry`): Basic auth
//! with a Weir API key, Confluent's bodies and error codes, compatibility on register, soft and
//! hard delete, two tenants, the weakest role, and concurrent registration on both stores.

use axum::body::Body;
use axum::http::{Method, Request, header};
use base64::Engine;
use serde_json::{Value, json};

use crate::support::{Reply, TestApp};

const MEDIA: &str = "application/vnd.schemaregistry.v1+json";

fn basic(key: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("any-user:{key}"));
    format!("Basic {token}")
}

async fn sr(
    t: &TestApp,
    method: Method,
    path: &str,
    auth: Option<String>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/schema-registry{path}"));
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, MEDIA)
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    t.send(req.unwrap()).await
}

/// Asserts Confluent's error shape with this status and `error_code`; returns the message.
fn confluent_error(r: &Reply, status: u16, code: u64) -> String {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.content_type, MEDIA, "{}", r.text);
    let v = r.json();
    assert_eq!(v["error_code"], code, "{v}");
    v["message"].as_str().unwrap().to_string()
}

fn avro_order(extra: &str) -> String {
    format!(
        r#"{{"type":"record","name":"Order","namespace":"acme","fields":[{{"name":"id","type":"string"}}{extra}]}}"#
    )
}

#[tokio::test]
async fn confluent_api_round_trip() {
    round_trip(TestApp::sqlite().await).await;
}

#[tokio::test]
async fn confluent_api_round_trip_postgres() {
    round_trip(TestApp::postgres().await).await;
}

async fn round_trip(t: TestApp) {
    let (_, key) = t.tenant("acme").await;
    let a = || Some(basic(&key));

    let r = sr(
        &t,
        Method::POST,
        "/subjects/orders-value/versions",
        a(),
        Some(json!({"schema": avro_order("")})),
    )
    .await;
    assert_eq!(r.content_type, MEDIA);
    let id1 = r.ok()["id"].as_i64().unwrap();
    // The same schema again: the same id, no new version.
    let again = sr(
        &t,
        Method::POST,
        "/subjects/orders-value/versions",
        a(),
        Some(json!({"schema": avro_order("")})),
    )
    .await
    .ok();
    assert_eq!(again["id"], id1);
    assert_eq!(again["version"], 1);

    // A compatible change (a field with a default) is version 2 with a new id.
    let v2 = avro_order(r#",{"name":"qty","type":"int","default":0}"#);
    let id2 = sr(
        &t,
        Method::POST,
        "/subjects/orders-value/versions",
        a(),
        Some(json!({"schema": v2})),
    )
    .await
    .ok()["id"]
        .as_i64()
        .unwrap();
    assert_ne!(id1, id2);
    assert_eq!(
        sr(&t, Method::GET, "/subjects", a(), None).await.ok(),
        json!(["orders-value"])
    );
    assert_eq!(
        sr(
            &t,
            Method::GET,
            "/subjects/orders-value/versions",
            a(),
            None
        )
        .await
        .ok(),
        json!([1, 2])
    );
    let latest = sr(
        &t,
        Method::GET,
        "/subjects/orders-value/versions/latest",
        a(),
        None,
    )
    .await
    .ok();
    assert_eq!(
        (latest["version"].clone(), latest["id"].clone()),
        (json!(2), json!(id2))
    );
    assert!(
        latest.get("schemaType").is_none(),
        "Avro leaves schemaType out: {latest}"
    );
    let by_id = sr(&t, Method::GET, &format!("/schemas/ids/{id1}"), a(), None)
        .await
        .ok();
    assert_eq!(by_id["schema"], avro_order(""));
    let raw = sr(
        &t,
        Method::GET,
        "/subjects/orders-value/versions/1/schema",
        a(),
        None,
    )
    .await;
    assert_eq!(raw.text, avro_order(""));
    let found = sr(
        &t,
        Method::POST,
        "/subjects/orders-value",
        a(),
        Some(json!({"schema": avro_order("")})),
    )
    .await
    .ok();
    assert_eq!(
        (found["version"].clone(), found["id"].clone()),
        (json!(1), json!(id1))
    );
    let missing = sr(
        &t,
        Method::POST,
        "/subjects/orders-value",
        a(),
        Some(json!({"schema": avro_order(r#",{"name":"x","type":"int"}"#)})),
    )
    .await;
    confluent_error(&missing, 404, 40403);

    // An incompatible change: refused with 409 and the reason; the check endpoint agrees.
    let bad =
        avro_order(r#",{"name":"qty","type":"int","default":0},{"name":"note","type":"string"}"#);
    let r = sr(
        &t,
        Method::POST,
        "/compatibility/subjects/orders-value/versions/latest?verbose=true",
        a(),
        Some(json!({"schema": bad})),
    )
    .await
    .ok();
    assert_eq!(r["is_compatible"], false);
    assert!(r["messages"][0].as_str().unwrap().contains("note"), "{r}");
    let refused = sr(
        &t,
        Method::POST,
        "/subjects/orders-value/versions",
        a(),
        Some(json!({"schema": bad})),
    )
    .await;
    let message = confluent_error(&refused, 409, 409);
    assert!(
        message.contains("'note'") && message.contains("default"),
        "{message}"
    );
    // With NONE on the subject it is accepted.
    let r = sr(
        &t,
        Method::PUT,
        "/config/orders-value",
        a(),
        Some(json!({"compatibility": "NONE"})),
    )
    .await
    .ok();
    assert_eq!(r, json!({"compatibility": "NONE"}));
    assert_eq!(
        sr(&t, Method::GET, "/config/orders-value", a(), None)
            .await
            .ok()["compatibilityLevel"],
        "NONE"
    );
    assert_eq!(
        sr(&t, Method::GET, "/config", a(), None).await.ok()["compatibilityLevel"],
        "BACKWARD"
    );
    assert_eq!(
        sr(
            &t,
            Method::POST,
            "/subjects/orders-value/versions",
            a(),
            Some(json!({"schema": bad}))
        )
        .await
        .ok()["version"],
        3
    );
    confluent_error(
        &sr(
            &t,
            Method::PUT,
            "/config",
            a(),
            Some(json!({"compatibility": "SIDEWAYS"})),
        )
        .await,
        422,
        42203,
    );

    // JSON Schema and Protobuf, with schemaType.
    let js = json!({"schemaType": "JSON", "schema": r#"{"type":"object","properties":{"id":{"type":"string"}}}"#});
    let r = sr(
        &t,
        Method::POST,
        "/subjects/orders-json/versions",
        a(),
        Some(js),
    )
    .await
    .ok();
    let got = sr(
        &t,
        Method::GET,
        &format!("/schemas/ids/{}", r["id"]),
        a(),
        None,
    )
    .await
    .ok();
    assert_eq!(got["schemaType"], "JSON");
    let pb = json!({"schemaType": "PROTOBUF", "schema": "syntax = \"proto3\"; message Order { string id = 1; }"});
    sr(
        &t,
        Method::POST,
        "/subjects/orders-proto/versions",
        a(),
        Some(pb),
    )
    .await
    .ok();
    let broken = json!({"schemaType": "PROTOBUF", "schema": "message Order { strng id = 1; }"});
    let msg = confluent_error(
        &sr(
            &t,
            Method::POST,
            "/subjects/orders-proto/versions",
            a(),
            Some(broken),
        )
        .await,
        422,
        42201,
    );
    assert!(msg.contains("Protobuf"), "{msg}");

    // Errors in Confluent's shape.
    confluent_error(
        &sr(&t, Method::GET, "/subjects/nope/versions", a(), None).await,
        404,
        40401,
    );
    confluent_error(
        &sr(
            &t,
            Method::GET,
            "/subjects/orders-value/versions/9",
            a(),
            None,
        )
        .await,
        404,
        40402,
    );
    confluent_error(
        &sr(
            &t,
            Method::GET,
            "/subjects/orders-value/versions/zero",
            a(),
            None,
        )
        .await,
        422,
        42202,
    );
    confluent_error(
        &sr(&t, Method::GET, "/schemas/ids/99999", a(), None).await,
        404,
        40403,
    );

    // Soft delete hides, permanent delete needs a soft delete first.
    confluent_error(
        &sr(
            &t,
            Method::DELETE,
            "/subjects/orders-json?permanent=true",
            a(),
            None,
        )
        .await,
        404,
        40405,
    );
    assert_eq!(
        sr(&t, Method::DELETE, "/subjects/orders-json", a(), None)
            .await
            .ok(),
        json!([1])
    );
    confluent_error(
        &sr(&t, Method::GET, "/subjects/orders-json/versions", a(), None).await,
        404,
        40401,
    );
    assert_eq!(
        sr(&t, Method::GET, "/subjects?deleted=true", a(), None)
            .await
            .ok(),
        json!(["orders-json", "orders-proto", "orders-value"])
    );
    assert_eq!(
        sr(
            &t,
            Method::DELETE,
            "/subjects/orders-json?permanent=true",
            a(),
            None
        )
        .await
        .ok(),
        json!([1])
    );
    assert_eq!(
        sr(&t, Method::GET, "/subjects?deleted=true", a(), None)
            .await
            .ok(),
        json!(["orders-proto", "orders-value"])
    );
    assert_eq!(
        sr(
            &t,
            Method::DELETE,
            "/subjects/orders-value/versions/1",
            a(),
            None
        )
        .await
        .ok(),
        json!(1)
    );
    assert_eq!(
        sr(
            &t,
            Method::GET,
            "/subjects/orders-value/versions",
            a(),
            None
        )
        .await
        .ok(),
        json!([2, 3])
    );
    // Version numbers are never reused.
    sr(
        &t,
        Method::PUT,
        "/config/orders-value",
        a(),
        Some(json!({"compatibility": "NONE"})),
    )
    .await
    .ok();
    let r = sr(
        &t,
        Method::POST,
        "/subjects/orders-value/versions",
        a(),
        Some(json!({"schema": avro_order(r#",{"name":"z","type":"long"}"#)})),
    )
    .await
    .ok();
    assert_eq!(r["version"], 4);

    // Writes through the Confluent API are in the audit log like any other.
    let audit = t.get("/api/v1/audit", &key).await;
    assert!(
        audit
            .text
            .contains("/schema-registry/subjects/orders-value/versions"),
        "{}",
        audit.text
    );

    // Bearer works as well as Basic.
    let r = sr(
        &t,
        Method::GET,
        "/subjects",
        Some(format!("Bearer {key}")),
        None,
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text);
}

#[tokio::test]
async fn tenants_are_isolated_and_viewers_cannot_register() {
    let t = TestApp::sqlite().await;
    let (_, a_key) = t.tenant("tenant-a").await;
    let (_, b_key) = t.tenant("tenant-b").await;
    let (_, viewer) = t.user_with_key(&a_key, "viewer@a.test", "viewer").await;

    let id = sr(
        &t,
        Method::POST,
        "/subjects/a-orders/versions",
        Some(basic(&a_key)),
        Some(json!({"schema": avro_order("")})),
    )
    .await
    .ok()["id"]
        .as_i64()
        .unwrap();

    // B sees nothing of A's: no subjects, no versions, no ids, no lookups, no configs.
    let b = || Some(basic(&b_key));
    assert_eq!(
        sr(&t, Method::GET, "/subjects", b(), None).await.ok(),
        json!([])
    );
    confluent_error(
        &sr(
            &t,
            Method::GET,
            "/subjects/a-orders/versions/latest",
            b(),
            None,
        )
        .await,
        404,
        40401,
    );
    confluent_error(
        &sr(&t, Method::GET, &format!("/schemas/ids/{id}"), b(), None).await,
        404,
        40403,
    );
    confluent_error(
        &sr(
            &t,
            Method::POST,
            "/subjects/a-orders",
            b(),
            Some(json!({"schema": avro_order("")})),
        )
        .await,
        404,
        40401,
    );
    confluent_error(
        &sr(&t, Method::DELETE, "/subjects/a-orders", b(), None).await,
        404,
        40401,
    );
    confluent_error(
        &sr(
            &t,
            Method::POST,
            "/compatibility/subjects/a-orders/versions/latest",
            b(),
            Some(json!({"schema": avro_order("")})),
        )
        .await,
        404,
        40401,
    );
    // B may use the same subject name; its schema gets its own id and its own version 1.
    let b_reg = sr(
        &t,
        Method::POST,
        "/subjects/a-orders/versions",
        b(),
        Some(json!({"schema": avro_order("")})),
    )
    .await
    .ok();
    assert_eq!(b_reg["version"], 1);
    assert_ne!(b_reg["id"], id);
    // B cannot reference A's subject from its own schema.
    let refs = json!({"schema": r#"{"type":"record","name":"Wrap","fields":[{"name":"o","type":"acme.Order"}]}"#,
        "references": [{"name": "acme.Order", "subject": "a-only", "version": 1}]});
    sr(
        &t,
        Method::POST,
        "/subjects/a-only/versions",
        Some(basic(&a_key)),
        Some(json!({"schema": avro_order("")})),
    )
    .await
    .ok();
    confluent_error(
        &sr(&t, Method::POST, "/subjects/wrap/versions", b(), Some(refs)).await,
        422,
        42201,
    );

    // A viewer reads but cannot register, delete or configure.
    let v = || Some(basic(&viewer));
    assert_eq!(
        sr(
            &t,
            Method::GET,
            "/subjects/a-orders/versions/latest",
            v(),
            None
        )
        .await
        .ok()["id"],
        id
    );
    let msg = confluent_error(
        &sr(
            &t,
            Method::POST,
            "/subjects/a-orders/versions",
            v(),
            Some(json!({"schema": avro_order(r#",{"name":"q","type":"int","default":1}"#)})),
        )
        .await,
        403,
        40301,
    );
    assert!(msg.contains("schemas:create"), "{msg}");
    confluent_error(
        &sr(&t, Method::DELETE, "/subjects/a-orders", v(), None).await,
        403,
        40301,
    );
    confluent_error(
        &sr(
            &t,
            Method::PUT,
            "/config",
            v(),
            Some(json!({"compatibility": "NONE"})),
        )
        .await,
        403,
        40301,
    );
    assert_eq!(
        sr(
            &t,
            Method::GET,
            "/subjects/a-orders/versions",
            Some(basic(&a_key)),
            None
        )
        .await
        .ok(),
        json!([1])
    );

    // No or bad credentials: 401 in Confluent's shape.
    confluent_error(
        &sr(&t, Method::GET, "/subjects", None, None).await,
        401,
        40101,
    );
    confluent_error(
        &sr(
            &t,
            Method::GET,
            "/subjects",
            Some(basic("weir_not-a-key")),
            None,
        )
        .await,
        401,
        40101,
    );
    confluent_error(
        &sr(&t, Method::GET, "/subjects", Some("Basic !!!".into()), None).await,
        401,
        40101,
    );
}

async fn concurrent_registrations(t: TestApp) {
    let (_, key) = t.tenant("acme").await;
    sr(
        &t,
        Method::PUT,
        "/config",
        Some(basic(&key)),
        Some(json!({"compatibility": "NONE"})),
    )
    .await
    .ok();
    let tasks = (0..8).map(|i| {
        let (t, key) = (&t, key.clone());
        async move {
            let schema = avro_order(&format!(r#",{{"name":"f{i}","type":"int","default":0}}"#));
            // Each schema twice at once: one version per distinct schema, whatever the order.
            let (one, two) = futures::join!(
                sr(
                    t,
                    Method::POST,
                    "/subjects/orders/versions",
                    Some(basic(&key)),
                    Some(json!({"schema": schema}))
                ),
                sr(
                    t,
                    Method::POST,
                    "/subjects/orders/versions",
                    Some(basic(&key)),
                    Some(json!({"schema": schema}))
                ),
            );
            (one.ok(), two.ok())
        }
    });
    let results = futures::future::join_all(tasks).await;
    let mut ids: Vec<i64> = Vec::new();
    for (one, two) in &results {
        assert_eq!(one["id"], two["id"]);
        ids.push(one["id"].as_i64().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "{results:?}");
    let versions = sr(
        &t,
        Method::GET,
        "/subjects/orders/versions",
        Some(basic(&key)),
        None,
    )
    .await
    .ok();
    assert_eq!(versions, json!([1, 2, 3, 4, 5, 6, 7, 8]));
}

#[tokio::test]
async fn concurrent_registrations_sqlite() {
    concurrent_registrations(TestApp::sqlite().await).await;
}

#[tokio::test]
async fn concurrent_registrations_postgres() {
    concurrent_registrations(TestApp::postgres().await).await;
}

#[tokio::test]
async fn weir_api_v1_schemas() {
    let t = TestApp::sqlite().await;
    let (_, a) = t.tenant("tenant-a").await;
    let (_, b) = t.tenant("tenant-b").await;
    let (_, viewer) = t.user_with_key(&a, "viewer@a.test", "viewer").await;
    let body = |schema: &str| json!({"schema": schema, "schema_type": "AVRO"});

    let v1 = t
        .json(
            Method::POST,
            "/api/v1/schemas/orders/versions",
            &a,
            body(&avro_order("")),
        )
        .await
        .ok();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["schema_type"], "AVRO");
    let listed = t.get("/api/v1/schemas", &a).await.ok();
    assert_eq!(listed[0]["subject"], "orders");
    assert_eq!(listed[0]["latest"]["id"], v1["id"]);
    assert_eq!(listed[0]["compatibility"], "BACKWARD");
    assert_eq!(
        t.get("/api/v1/schemas/orders/versions/latest", &viewer)
            .await
            .ok()["id"],
        v1["id"]
    );

    // Incompatible: the check says why, registering is a 409 problem.
    let bad = avro_order(r#",{"name":"note","type":"string"}"#);
    let check = t
        .json(Method::POST, "/api/v1/schemas/orders/check", &a, body(&bad))
        .await
        .ok();
    assert_eq!(check["compatible"], false);
    assert!(
        check["messages"][0].as_str().unwrap().contains("note"),
        "{check}"
    );
    let p = t
        .json(
            Method::POST,
            "/api/v1/schemas/orders/versions",
            &a,
            body(&bad),
        )
        .await
        .problem(409, "incompatible_schema");
    assert!(p["detail"].as_str().unwrap().contains("note"), "{p}");
    t.json(
        Method::POST,
        "/api/v1/schemas/orders/versions",
        &a,
        json!({"schema": "{", "schema_type": "AVRO"}),
    )
    .await
    .problem(422, "invalid_value");

    // The weakest role that must fail, and the other tenant.
    t.json(
        Method::POST,
        "/api/v1/schemas/orders/versions",
        &viewer,
        body(&avro_order("")),
    )
    .await
    .problem(403, "forbidden");
    t.delete("/api/v1/schemas/orders", &viewer)
        .await
        .problem(403, "forbidden");
    assert_eq!(t.get("/api/v1/schemas", &b).await.ok(), json!([]));
    t.get("/api/v1/schemas/orders/versions", &b)
        .await
        .problem(404, "not_found");
    t.get("/api/v1/schemas/orders/versions/1", &b)
        .await
        .problem(404, "not_found");
    t.delete("/api/v1/schemas/orders", &b)
        .await
        .problem(404, "not_found");

    // Soft, then permanent.
    t.delete("/api/v1/schemas/orders?permanent=true", &a)
        .await
        .problem(409, "conflict");
    assert_eq!(
        t.delete("/api/v1/schemas/orders", &a).await.ok(),
        json!({"versions": [1]})
    );
    t.get("/api/v1/schemas/orders/versions", &a)
        .await
        .problem(404, "not_found");
    assert_eq!(
        t.delete("/api/v1/schemas/orders?permanent=true", &a)
            .await
            .ok(),
        json!({"versions": [1]})
    );
}

fn validating_pipeline(subject: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1
kind: Pipeline
metadata:
  name: checked
spec:
  source:
    stream: ORDERS
    subjects: ["orders.>"]
  nodes:
    - id: check
      validate:
        schema: {{ subject: {subject} }}
      next: out
    - id: out
      publish:
        subject: checked.orders
"#
    )
}

const ORDER_JSON_SCHEMA: &str =
    r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}"#;

/// Creates the stream `ORDERS` (`orders.>`) as `key`.
async fn orders_stream(t: &TestApp, key: &str) {
    t.yaml(
        Method::PUT,
        "/api/v1/streams/ORDERS",
        key,
        &crate::support::stream_yaml("ORDERS", "orders.>"),
    )
    .await
    .ok();
}

/// The first problem `POST /api/v1/pipelines:validate` finds in `yaml` as `key` (it must be
/// refused).
async fn first_problem(t: &TestApp, key: &str, yaml: &str) -> Value {
    let p = t
        .yaml(Method::POST, "/api/v1/pipelines:validate", key, yaml)
        .await
        .problem(422, "invalid_spec");
    p["diagnostics"][0].clone()
}

/// Registers `schema` of `schema_type` (`AVRO`, `JSON`) under `subject` as `key`; the reply.
async fn register(t: &TestApp, key: &str, subject: &str, schema: &str, schema_type: &str) -> Value {
    t.json(
        Method::POST,
        &format!("/api/v1/schemas/{subject}/versions"),
        key,
        json!({"schema": schema, "schema_type": schema_type}),
    )
    .await
    .ok()
}

/// Creates the pipeline `yaml` (named `name`) as `key` of tenant `acme`, deploys it, and
/// returns the deployed spec.
async fn create_and_deploy(t: &TestApp, key: &str, yaml: &str, name: &str) -> Value {
    t.yaml(Method::POST, "/api/v1/pipelines", key, yaml)
        .await
        .ok();
    t.json(
        Method::POST,
        &format!("/api/v1/pipelines/{name}/deploy"),
        key,
        json!({}),
    )
    .await
    .ok();
    let record: weir_pipelines::fleet::Deployment = serde_json::from_slice(
        &t.nats()
            .deployments()
            .get(&format!("acme.{name}"))
            .await
            .unwrap()
            .expect("deployed"),
    )
    .unwrap();
    record.spec
}

#[tokio::test]
async fn pipelines_name_registry_schemas_that_exist_and_deploy_carries_the_schema() {
    let t = TestApp::sqlite_nats().await;
    let (_, a) = t.tenant("acme").await;
    let (_, b) = t.tenant("other").await;
    orders_stream(&t, &a).await;

    // An unknown subject: refused at validate and at create, located at the node.
    let yaml = validating_pipeline("orders-json");
    for path in ["/api/v1/pipelines:validate", "/api/v1/pipelines"] {
        let p = t
            .yaml(Method::POST, path, &a, &yaml)
            .await
            .problem(422, "invalid_spec");
        let d = &p["diagnostics"][0];
        assert_eq!(d["path"], "/spec/nodes/0/validate/schema", "{p}");
        assert_eq!(d["code"], "unknown_schema", "{p}");
        // Located in the file as the loader's own problems are: the `schema:` key.
        assert_eq!(
            (d["line"].clone(), d["column"].clone()),
            (json!(12), json!(9)),
            "{p}"
        );
        assert!(
            d["message"].as_str().unwrap().contains("orders-json"),
            "{p}"
        );
    }
    // An Avro subject is not a JSON Schema.
    register(&t, &a, "orders-avro", &avro_order(""), "AVRO").await;
    let d = first_problem(&t, &a, &validating_pipeline("orders-avro")).await;
    assert_eq!(d["code"], "not_json_schema", "{d}");

    // Registered: accepted; the deployed spec carries the schema, its version and id.
    let v = register(&t, &a, "orders-json", ORDER_JSON_SCHEMA, "JSON").await;
    let spec = create_and_deploy(&t, &a, &yaml, "checked").await;
    let node = &spec["spec"]["nodes"][0]["validate"];
    assert_eq!(
        node["json_schema"],
        serde_json::from_str::<Value>(ORDER_JSON_SCHEMA).unwrap(),
        "{node}"
    );
    assert_eq!(
        (
            node["schema"]["version"].clone(),
            node["schema"]["id"].clone()
        ),
        (json!(1), v["id"].clone())
    );

    // A schema that takes part of itself from another subject (a `$ref` to a registry
    // reference): the deployed spec carries the referenced schema under the name it uses.
    let customer = r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}"#;
    t.json(
        Method::POST,
        "/api/v1/schemas/customer-json/versions",
        &a,
        json!({"schema": customer, "schema_type": "JSON"}),
    )
    .await
    .ok();
    let with_ref = r#"{"type":"object","properties":{"customer":{"$ref":"customer.json"}}}"#;
    t.json(
        Method::POST,
        "/api/v1/schemas/orders-ref/versions",
        &a,
        json!({"schema": with_ref, "schema_type": "JSON",
               "references": [{"name": "customer.json", "subject": "customer-json", "version": 1}]}),
    )
    .await
    .ok();
    let yaml_ref = validating_pipeline("orders-ref").replace("name: checked", "name: checked-ref");
    let spec = create_and_deploy(&t, &a, &yaml_ref, "checked-ref").await;
    let node = &spec["spec"]["nodes"][0]["validate"];
    assert_eq!(
        node["references"],
        json!([{"name": "customer.json", "schema": customer}]),
        "{node}"
    );

    // Another tenant cannot use acme's subject.
    let d = first_problem(&t, &b, &yaml).await;
    assert_eq!(d["code"], "unknown_schema", "{d}");
}

/// A `format: json` source naming a registry JSON Schema: an unknown subject, an Avro one or
/// another tenant's is refused at validate; deployed, the spec carries the schema (its
/// version's id and text), from which the worker types the fields its pipeline reads.
#[tokio::test]
async fn a_json_sources_registry_schema_is_checked_and_deployed() {
    let t = TestApp::sqlite_nats().await;
    let (_, a) = t.tenant("acme").await;
    let (_, b) = t.tenant("other").await;
    orders_stream(&t, &a).await;
    let yaml = |subject: &str| {
        format!(
            "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: typed }}\nspec:\n  source: {{ stream: ORDERS, schema: {subject} }}\n  nodes:\n    - id: big\n      filter: \"data.id <> ''\"\n      next: out\n    - id: out\n      publish: {{ subject: typed.orders }}\n"
        )
    };
    let d = first_problem(&t, &a, &yaml("orders-json")).await;
    assert_eq!(
        (d["path"].as_str(), d["code"].as_str()),
        (Some("/spec/source/schema"), Some("unknown_schema")),
        "{d}"
    );
    register(&t, &a, "orders-avro", &avro_order(""), "AVRO").await;
    let d = first_problem(&t, &a, &yaml("orders-avro")).await;
    assert_eq!(d["code"], "schema_format_mismatch", "{d}");
    let v = register(&t, &a, "orders-json", ORDER_JSON_SCHEMA, "JSON").await;
    // Another tenant cannot name acme's subject.
    let d = first_problem(&t, &b, &yaml("orders-json")).await;
    assert_eq!(d["code"], "unknown_schema", "{d}");
    let spec = create_and_deploy(&t, &a, &yaml("orders-json"), "typed").await;
    let schema = &spec["spec"]["source"]["schema"];
    assert_eq!(schema["id"], v["id"], "{schema}");
    assert_eq!(schema["writers"][0]["id"], v["id"], "{schema}");
    assert_eq!(
        schema["writers"][0]["schema"], ORDER_JSON_SCHEMA,
        "{schema}"
    );
}

#[tokio::test]
async fn infer_schema_from_a_stream() {
    let t = TestApp::sqlite_nats().await;
    let (_, a) = t.tenant("acme").await;
    let (_, b) = t.tenant("other").await;
    let (_, viewer) = t.user_with_key(&a, "viewer@acme.test", "viewer").await;
    orders_stream(&t, &a).await;
    let js = t.nats().js();
    for i in 0..12 {
        let order = json!({"id": format!("o-{i}"), "amount": i, "currency": (["USD", "EUR"][i % 2]),
            "at": "2026-12-05T10:00:00Z"});
        js.publish("orders.created", order.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    js.publish("orders.created", "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let r = t
        .json(
            Method::POST,
            "/api/v1/streams/ORDERS/infer-schema?samples=20",
            &viewer,
            json!(null),
        )
        .await
        .ok();
    assert_eq!(
        (r["samples"].clone(), r["skipped"].clone()),
        (json!(12), json!(1)),
        "{r}"
    );
    let s = &r["schema"];
    assert_eq!(
        s["required"],
        json!(["amount", "at", "currency", "id"]),
        "{s}"
    );
    assert_eq!(s["properties"]["amount"]["type"], "integer");
    assert_eq!(s["properties"]["currency"]["enum"], json!(["EUR", "USD"]));
    assert_eq!(s["properties"]["at"]["format"], "date-time");
    // Ready to register as it is.
    let body = json!({"schema": s.to_string(), "schema_type": "JSON"});
    t.json(
        Method::POST,
        "/api/v1/schemas/orders-inferred/versions",
        &a,
        body,
    )
    .await
    .ok();

    // Another tenant's stream of that name is not there for B.
    t.json(
        Method::POST,
        "/api/v1/streams/ORDERS/infer-schema",
        &b,
        json!(null),
    )
    .await
    .problem(404, "not_found");
}

/// The descriptor of `name` compiled from `text`, as Confluent's Python `ProtobufSerializer`
/// sends it: no source info, no (default) `json_name`s.
fn serializer_descriptor(
    name: &str,
    text: &str,
    imports: &[(&str, &str)],
) -> prost_reflect::prost_types::FileDescriptorProto {
    fn strip(m: &mut prost_reflect::prost_types::DescriptorProto) {
        m.field.iter_mut().for_each(|f| f.json_name = None);
        m.nested_type.iter_mut().for_each(strip);
    }
    let pool = weir_pipelines::proto_files::compile(name, text, imports.iter().copied()).unwrap();
    let mut file = pool
        .get_file_by_name(name)
        .unwrap()
        .file_descriptor_proto()
        .clone();
    file.source_code_info = None;
    file.message_type.iter_mut().for_each(strip);
    file
}

fn base64_of(file: &prost_reflect::prost_types::FileDescriptorProto) -> String {
    use prost_reflect::prost::Message as _;
    base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec())
}

#[tokio::test]
async fn protobuf_descriptors_are_stored_as_proto_text() {
    const CUSTOMER: &str =
        "syntax = \"proto3\";\npackage acme;\nmessage Customer { string id = 1; }\n";
    const ORDER: &str = "syntax = \"proto3\";\npackage acme;\nimport \"acme/customer.proto\";\n\
        message Order {\n  string id = 1;\n  Status status = 2;\n  map<string, int64> counts = 3;\n\
        oneof payment { string card = 4; double cash = 5; }\n  Customer customer = 6;\n\
        enum Status { UNKNOWN = 0; PAID = 1; }\n}\n";
    let t = TestApp::sqlite().await;
    let (_, key) = t.tenant("acme").await;
    let a = || Some(basic(&key));
    let customer = serializer_descriptor("acme/customer.proto", CUSTOMER, &[]);
    let order = serializer_descriptor(
        "acme/order.proto",
        ORDER,
        &[("acme/customer.proto", CUSTOMER)],
    );
    let app = &t;
    let post = move |path: &'static str, body: Value| async move {
        sr(app, Method::POST, path, a(), Some(body)).await.ok()
    };

    // The import first, as its own subject, then the order with a reference to it: both as
    // base64 descriptors, as the serializer registers them.
    let c = post(
        "/subjects/customer-value/versions",
        json!({"schemaType": "PROTOBUF", "schema": base64_of(&customer)}),
    )
    .await;
    let order_body = json!({
        "schemaType": "PROTOBUF",
        "schema": base64_of(&order),
        "references": [{"name": "acme/customer.proto", "subject": "customer-value", "version": 1}],
    });
    let o = post("/subjects/orders-proto-value/versions", order_body.clone()).await;
    let id = o["id"].as_i64().unwrap();
    assert_eq!(o["version"], 1);

    // Stored and shown as `.proto` text.
    let customer_text = sr(
        &t,
        Method::GET,
        "/subjects/customer-value/versions/1",
        a(),
        None,
    )
    .await
    .ok();
    assert_eq!(customer_text["id"], c["id"]);
    let got = sr(
        &t,
        Method::GET,
        "/subjects/orders-proto-value/versions/1",
        a(),
        None,
    )
    .await
    .ok();
    assert_eq!(got["schemaType"], "PROTOBUF");
    assert_eq!(got["references"][0]["subject"], "customer-value");
    let text = got["schema"].as_str().unwrap();
    for line in [
        "syntax = \"proto3\";",
        "package acme;",
        "import \"acme/customer.proto\";",
        "message Order {",
        "  map<string, int64> counts = 3;",
        "  oneof payment {",
        "  enum Status {",
    ] {
        assert!(text.contains(line), "{line:?} missing in\n{text}");
    }
    assert!(
        customer_text["schema"]
            .as_str()
            .unwrap()
            .contains("message Customer {"),
        "{customer_text}"
    );
    let by_id = sr(&t, Method::GET, &format!("/schemas/ids/{id}"), a(), None)
        .await
        .ok();
    assert_eq!(by_id["schema"], text);
    let v1 = t
        .get("/api/v1/schemas/orders-proto-value/versions/1", &key)
        .await
        .ok();
    assert_eq!(v1["schema"], text);

    // `format=serialized`: base64 of a descriptor equal to the one registered (but for the
    // file's name and the `json_name`s that compiling fills in).
    for path in [
        "/subjects/orders-proto-value/versions/1?format=serialized".to_string(),
        format!("/schemas/ids/{id}?format=serialized"),
    ] {
        let got = sr(&t, Method::GET, &path, a(), None).await.ok();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(got["schema"].as_str().unwrap())
            .unwrap();
        let mut back = <prost_reflect::prost_types::FileDescriptorProto as prost_reflect::prost::Message>::decode(bytes.as_slice()).unwrap();
        back.name = order.name.clone();
        back.source_code_info = None;
        back.message_type.iter_mut().for_each(|m| {
            m.field.iter_mut().for_each(|f| f.json_name = None);
            m.nested_type
                .iter_mut()
                .for_each(|n| n.field.iter_mut().for_each(|f| f.json_name = None));
        });
        assert_eq!(back, order, "{path}");
    }

    // The same base64 again: the same id and version; looked up, it finds version 1; checked,
    // it is compatible; and the stored text itself is the same schema.
    let again = post("/subjects/orders-proto-value/versions", order_body.clone()).await;
    assert_eq!(
        (again["id"].as_i64(), again["version"].as_i64()),
        (Some(id), Some(1))
    );
    let found = post("/subjects/orders-proto-value", order_body.clone()).await;
    assert_eq!(
        (found["id"].as_i64(), found["version"].as_i64()),
        (Some(id), Some(1))
    );
    assert_eq!(found["schema"], text);
    let check = post(
        "/compatibility/subjects/orders-proto-value/versions/latest",
        order_body.clone(),
    )
    .await;
    assert_eq!(check["is_compatible"], true);
    let as_text = json!({
        "schemaType": "PROTOBUF",
        "schema": text,
        "references": order_body["references"],
    });
    let same = post("/subjects/orders-proto-value/versions", as_text).await;
    assert_eq!(
        (same["id"].as_i64(), same["version"].as_i64()),
        (Some(id), Some(1))
    );
    assert_eq!(
        sr(
            &t,
            Method::GET,
            "/subjects/orders-proto-value/versions",
            a(),
            None
        )
        .await
        .ok(),
        json!([1])
    );
}
