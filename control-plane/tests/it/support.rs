//! Test harness: a control plane over a fresh store (SQLite file or throwaway PostgreSQL), and
//! a small client over `tower::ServiceExt::oneshot`.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use weir_control_plane::nats::Nats;
use weir_control_plane::{AppState, Db, Settings, app, tenants};
use weir_testkit::nats::NatsServer;
use weir_testkit::postgres::PostgresServer;

pub const ADMIN_KEY: &str = "weir_test-bootstrap-admin-key-0123456789abcdefGHIJ";

/// A pipeline that passes the format's checker.
pub fn pipeline_yaml(name: &str, filter: &str, parallelism: u32) -> String {
    format!(
        r#"apiVersion: weir.dev/v1
kind: Pipeline
metadata:
  name: {name}
  labels:
    team: payments
spec:
  source:
    stream: ORDERS
    subjects: ["orders.created.>"]
  nodes:
    - id: big
      filter: "{filter}"
      next: out
    - id: out
      publish:
        subject: orders.big
  execution:
    parallelism: {parallelism}
"#
    )
}

pub fn stream_yaml(name: &str, subject: &str) -> String {
    format!(
        "apiVersion: weir.dev/v1\nkind: Stream\nmetadata:\n  name: {name}\nspec:\n  subjects: [\"{subject}\"]\n"
    )
}

pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    /// The NATS connection of the control plane (`sqlite_nats`).
    pub nats: Option<Nats>,
    _dir: tempfile::TempDir,
    _pg: Option<PostgresServer>,
    _nats_server: Option<NatsServer>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// Asserts a problem+json body with this status and code; returns it.
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.text
        );
        let p = self.json();
        assert_eq!(p["code"], code, "{p}");
        assert_eq!(p["status"], status);
        assert!(p["type"].is_string() && p["title"].is_string() && p["detail"].is_string());
        p
    }

    pub fn ok(&self) -> Value {
        assert!(self.status.is_success(), "{} {}", self.status, self.text);
        if self.text.is_empty() {
            Value::Null
        } else if self.content_type.contains("json") {
            self.json()
        } else {
            Value::String(self.text.clone())
        }
    }
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        Self::sqlite_with(|_| {}).await
    }

    pub async fn sqlite_with(tune: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = Db::sqlite_url(&dir.path().join("weir.db"));
        Self::open(&url, dir, None, tune).await
    }

    /// A test client over a state opened elsewhere (e.g. by `weir_control_plane::prepare`).
    pub fn over(state: AppState) -> TestApp {
        TestApp {
            app: app(state.clone()),
            state,
            nats: None,
            _dir: tempfile::tempdir().unwrap(),
            _pg: None,
            _nats_server: None,
        }
    }

    /// A control plane on SQLite connected to a fresh real nats-server.
    pub async fn sqlite_nats() -> TestApp {
        let server = NatsServer::start().expect("start nats-server (set WEIR_NATS_SERVER)");
        let nats = Nats::connect(&server.url()).await.expect("connect to NATS");
        let dir = tempfile::tempdir().unwrap();
        let url = Db::sqlite_url(&dir.path().join("weir.db"));
        let mut t = Self::open_with(&url, dir, None, Some(nats), |_| {}).await;
        t._nats_server = Some(server);
        t
    }

    /// A control plane on SQLite connected to a fresh nats-server in operator mode: every
    /// tenant gets its own NATS account.
    pub async fn sqlite_nats_operator() -> TestApp {
        Self::sqlite_nats_operator_with(|nats| nats).await
    }

    /// [`sqlite_nats_operator`](Self::sqlite_nats_operator) with the NATS side tuned (e.g. the
    /// revocation delay).
    pub async fn sqlite_nats_operator_with(tune: impl FnOnce(Nats) -> Nats) -> TestApp {
        let server = NatsServer::start_operator().expect("start nats-server in operator mode");
        let keys = weir_connectors::accounts::OperatorKeys::load(&server.keys_dir().unwrap())
            .expect("operator keys");
        let nats = Nats::connect_operator(&server.url(), keys)
            .await
            .expect("connect to NATS in operator mode");
        let nats = tune(nats);
        let dir = tempfile::tempdir().unwrap();
        let url = Db::sqlite_url(&dir.path().join("weir.db"));
        let mut t = Self::open_with(&url, dir, None, Some(nats), |_| {}).await;
        t._nats_server = Some(server);
        t
    }

    /// The nats-server of `sqlite_nats*` tests.
    pub fn nats_server(&self) -> &NatsServer {
        self._nats_server.as_ref().expect("a TestApp with NATS")
    }

    /// A control plane on a throwaway PostgreSQL connected to a fresh real nats-server.
    pub async fn postgres_nats() -> TestApp {
        let server = NatsServer::start().expect("start nats-server (set WEIR_NATS_SERVER)");
        let nats = Nats::connect(&server.url()).await.expect("connect to NATS");
        let pg = PostgresServer::start().expect("start PostgreSQL for the store tests");
        let url = pg.create_database("weir").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut t = Self::open_with(&url, dir, Some(pg), Some(nats), |_| {}).await;
        t._nats_server = Some(server);
        t
    }

    /// The NATS connection (panics unless made by `sqlite_nats` or `postgres_nats`).
    pub fn nats(&self) -> &Nats {
        self.nats.as_ref().expect("a TestApp with NATS")
    }

    pub async fn postgres() -> TestApp {
        let pg = PostgresServer::start().expect("start PostgreSQL for the store tests");
        let url = pg.create_database("weir").unwrap();
        Self::open(&url, tempfile::tempdir().unwrap(), Some(pg), |_| {}).await
    }

    async fn open(
        url: &str,
        dir: tempfile::TempDir,
        pg: Option<PostgresServer>,
        tune: impl FnOnce(&mut Settings),
    ) -> TestApp {
        Self::open_with(url, dir, pg, None, tune).await
    }

    async fn open_with(
        url: &str,
        dir: tempfile::TempDir,
        pg: Option<PostgresServer>,
        nats: Option<Nats>,
        tune: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let db = Db::connect(url).await.expect("open store");
        tenants::bootstrap(&db, Some(ADMIN_KEY)).await.unwrap();
        let mut settings = Settings::new([42u8; 32]);
        settings.body_limit = 64 * 1024;
        tune(&mut settings);
        let state = AppState::with_nats(db, settings, nats.clone());
        TestApp {
            app: app(state.clone()),
            state,
            nats,
            _dir: dir,
            _pg: pg,
            _nats_server: None,
        }
    }

    /// Sends a request and returns only its status (for streaming responses).
    pub async fn status_of(&self, method: Method, path: &str, token: &str) -> StatusCode {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        self.app.clone().oneshot(req).await.unwrap().status()
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let content_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some((ct, text)) => req.header(header::CONTENT_TYPE, ct).body(Body::from(text)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// The `action` of each audit event `GET /api/v1/audit{query}` lists.
    pub async fn audit_actions(&self, query: &str, token: &str) -> Vec<String> {
        let events = self.get(&format!("/api/v1/audit{query}"), token).await.ok();
        events["items"]
            .as_array()
            .expect("audit items")
            .iter()
            .map(|e| e["action"].as_str().expect("action").to_string())
            .collect()
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn json(&self, method: Method, path: &str, token: &str, body: Value) -> Reply {
        let token = Some(token).filter(|t| !t.is_empty());
        self.call(
            method,
            path,
            token,
            Some(("application/json", body.to_string())),
        )
        .await
    }

    pub async fn yaml(&self, method: Method, path: &str, token: &str, body: &str) -> Reply {
        self.call(
            method,
            path,
            Some(token),
            Some(("application/yaml", body.to_string())),
        )
        .await
    }

    /// Creates a tenant with an admin; returns (tenant id, admin key).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let r = self
            .json(
                Method::POST,
                "/api/v1/tenants",
                ADMIN_KEY,
                serde_json::json!({"name": name, "admin": {"email": format!("admin@{name}.test")}}),
            )
            .await;
        let v = r.ok();
        (
            v["tenant"]["id"].as_str().unwrap().to_string(),
            v["admin_api_key"].as_str().unwrap().to_string(),
        )
    }

    /// Creates a user with `role` in the key's tenant and an API key for them; returns
    /// (user id, key).
    /// Declares the stream `ORDERS` (`orders.>`) and creates the pipeline `name` reading it
    /// (filter `filter`, parallelism 2), with `key` of a tenant.
    pub async fn orders_pipeline(&self, key: &str, name: &str, filter: &str) {
        self.yaml(
            Method::PUT,
            "/api/v1/streams/ORDERS",
            key,
            &stream_yaml("ORDERS", "orders.>"),
        )
        .await
        .ok();
        self.yaml(
            Method::POST,
            "/api/v1/pipelines",
            key,
            &pipeline_yaml(name, filter, 2),
        )
        .await
        .ok();
    }

    pub async fn user_with_key(
        &self,
        admin_key: &str,
        email: &str,
        role: &str,
    ) -> (String, String) {
        let u = self
            .json(
                Method::POST,
                "/api/v1/users",
                admin_key,
                serde_json::json!({"email": email, "role": role, "password": "correct horse battery"}),
            )
            .await
            .ok();
        let id = u["id"].as_str().unwrap().to_string();
        let k = self
            .json(
                Method::POST,
                "/api/v1/api-keys",
                admin_key,
                serde_json::json!({"name": format!("{role}-key"), "user_id": id}),
            )
            .await
            .ok();
        (id, k["key"].as_str().unwrap().to_string())
    }
}
