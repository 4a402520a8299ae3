//! The whole path a user takes, through the API, with separate processes: `weir serve` on a
//! nats-server, `weir apply -f` of streams and a pipeline (filter, map, publish), two
//! `weir worker` processes, `weir deploy`; traffic with filtered and undecodable inputs;
//! outputs exactly once; the pipeline's status adding up; the DLQ listed, redriven (one entry
//! edited, the others as they were) and purged through the API; SIGTERM of the workers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::sigterm_and_wait;
use anyhow::{Context as _, Result, bail, ensure};
use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};
use weir_testkit::nats::NatsServer;

use crate::fleet_support::{block_on, read_all, weir_binary};
use crate::tenants_e2e::TenantApi;

const PIPELINE: &str = "orders-api";
/// The system tenant: the bootstrap admin's.
const CONSUMER: &str = "weir_default_orders-api";
const N: u64 = 3_000;
const API_KEY: &str = "weir_e2eFleetApiTestKey0123456789abcdefghijklmnopq";

const RESOURCES: &str = r#"
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: ORDERS }
spec:
  subjects: ["orders.>"]
  duplicate_window: 2m
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: OUT }
spec:
  subjects: ["out.>"]
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: orders-api }
spec:
  source:
    stream: ORDERS
    subjects: ["orders.created.>"]
    format: json
    consumer: { ack_wait: 5s, batch_size: 100 }
  nodes:
    - id: pending
      filter: "data.amount > 0 AND data.status = 'pending'"
      next: enrich
    - id: enrich
      map:
        set:
          tier: "'checked'"
          amount_cents: "CAST(round(data.amount * 100) AS BIGINT)"
      next: out
    - id: out
      publish: { subject: "out.orders" }
  errors:
    dlq: { stream: DLQ, subject: dlq.orders-api }
"#;

/// What input `i` is.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Input {
    Invalid,
    Filtered,
    Passed,
}

fn input(i: u64) -> Input {
    if i % 100 == 7 {
        Input::Invalid
    } else if i.is_multiple_of(3) {
        Input::Filtered
    } else {
        Input::Passed
    }
}

fn payload(i: u64) -> String {
    match input(i) {
        Input::Invalid => format!("{{\"id\":{i},\"amount\":"),
        Input::Filtered => format!("{{\"id\":{i},\"amount\":{},\"status\":\"shipped\"}}", i + 1),
        Input::Passed => format!("{{\"id\":{i},\"amount\":{},\"status\":\"pending\"}}", i + 1),
    }
}

/// A child process (`weir serve`, `weir worker`) logging to a file, killed on drop.
pub struct Proc {
    name: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(weir_binary());
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            name: name.into(),
            log,
            child: Some(child),
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigterm(&mut self, within: Duration) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        match sigterm_and_wait(&mut child, within)? {
            Some(status) => Ok(status),
            None => bail!(
                "{} did not exit within {within:?} of SIGTERM; log:\n{}",
                self.name,
                self.log_text()
            ),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `weir serve` on a free port with data in `dir/data` and `key` as the bootstrap admin
/// key, on `nats` (shared account: `--allow-shared-nats`) or without NATS; waits until it
/// answers. Returns the process and an API client with that key.
pub async fn serve_with_key(
    dir: &Path,
    nats: Option<&str>,
    key: &str,
) -> Result<(Proc, crate::tenants_e2e::TenantApi)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let data_dir = dir.join("data");
    let mut args = vec![
        "serve",
        "--addr",
        &addr,
        "--data-dir",
        data_dir.to_str().context("UTF-8")?,
    ];
    if let Some(url) = nats {
        // Tenants share the NATS account here; tests that use this look at the API view.
        args.extend(["--nats", url, "--allow-shared-nats"]);
    }
    let serve = Proc::spawn(dir, "serve", &args, &[("WEIR_BOOTSTRAP_API_KEY", key)])?;
    let base = format!("http://{addr}");
    let api = crate::tenants_e2e::TenantApi {
        base: base.clone(),
        key: key.into(),
        http: reqwest::Client::new(),
    };
    wait_healthy(&api.http, &base, &serve, Duration::from_secs(20)).await?;
    Ok((serve, api))
}

/// Waits until the `weir serve` process `serve` at `base` answers `/healthz` (its log in the
/// error otherwise).
pub async fn wait_healthy(
    http: &reqwest::Client,
    base: &str,
    serve: &Proc,
    within: Duration,
) -> Result<()> {
    wait_for("weir serve to answer /healthz", within, || async {
        let res = http
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        Ok(match res {
            Ok(r) if r.status().is_success() => (Some(()), "ok".into()),
            Ok(r) => (None, format!("status {}", r.status())),
            Err(e) => (None, format!("{e}; log: {}", serve.log_text())),
        })
    })
    .await
}

/// Polls `probe` until it returns `Some`, or fails after `timeout` naming `what` and the last
/// thing seen.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(Option<T>, String)>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe().await {
            Ok((Some(v), _)) => return Ok(v),
            Ok((None, seen)) => seen,
            Err(e) => format!("error: {e:#}"),
        };
        if Instant::now() > deadline {
            bail!("waited {timeout:?} for {what}; last seen: {seen}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `weir ARGS` against the API (WEIR_URL / WEIR_API_KEY), returning its stdout.
fn weir_cli(dir: &Path, base: &str, args: &[&str]) -> Result<String> {
    weir_cli_as(dir, base, API_KEY, args)
}

/// Runs `weir ARGS` against the API with `key`, returning its stdout.
pub fn weir_cli_as(dir: &Path, base: &str, key: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(weir_binary())
        .args(args)
        .env("WEIR_URL", base)
        .env("WEIR_API_KEY", key)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running weir {args:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "weir {args:?}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// `weir ARGS` that may fail: its exit code and its stdout and stderr together.
fn weir_cli_any(dir: &Path, base: &str, args: &[&str]) -> Result<(Option<i32>, String)> {
    let out = Command::new(weir_binary())
        .args(args)
        .env("WEIR_URL", base)
        .env("WEIR_API_KEY", API_KEY)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running weir {args:?}"))?;
    Ok((
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// `weir ARGS` with `input` on standard input.
fn weir_cli_stdin(dir: &Path, base: &str, args: &[&str], input: &str) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new(weir_binary())
        .args(args)
        .env("WEIR_URL", base)
        .env("WEIR_API_KEY", API_KEY)
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running weir {args:?}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "weir {args:?}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// A deployment the workers cannot start (its source stream, made outside Weir, allows one
/// consumer and already has it): `weir deploy` waits, says it failed to start with the
/// worker's error and where to look, and exits 1.
async fn failed_start(url: &str, dir: &Path, base: &str) -> Result<()> {
    let js = jetstream::new(async_nats::connect(url).await?);
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "LIMITED".into(),
            subjects: vec!["limited.>".into()],
            max_consumers: 1,
            ..Default::default()
        })
        .await?;
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("someone-else".into()),
            ..Default::default()
        })
        .await?;
    let stuck = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: stuck }\nspec:\n  source: { stream: LIMITED, subjects: [\"limited.>\"] }\n  nodes:\n    - id: out\n      publish: { subject: out.stuck }\n";
    weir_cli_stdin(dir, base, &["apply", "-f", "-"], stuck)?;
    let (code, out) = weir_cli_any(dir, base, &["deploy", "stuck", "--wait", "30s"])?;
    ensure!(
        code == Some(1)
            && out.contains(
                "deployed pipeline/stuck version 1 parallelism 1, but it failed to start: worker e2e-w"
            )
            && out.contains("maximum consumers limit reached")
            && out.contains("see `weir status stuck`"),
        "weir deploy of a pipeline that cannot start: exit {code:?}, printed {out:?}"
    );
    weir_cli(dir, base, &["undeploy", "stuck"])?;
    weir_cli(dir, base, &["delete", "pipeline", "stuck"])?;
    js.delete_stream("LIMITED").await?;
    Ok(())
}

/// Pipelines that could never run are refused by validate, apply and deploy, with the reason.
async fn refusals(api: &TenantApi, dir: &Path, base: &str) -> Result<()> {
    // The engine's compile runs in the API: an unknown SQL function.
    let bad = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: iot }\nspec:\n  source: { stream: ORDERS, subjects: [\"orders.created.>\"] }\n  nodes:\n    - id: f\n      filter: \"no_such_fn(data.temp_c) > 1\"\n      next: out\n    - id: out\n      publish: { subject: out.iot }\n";
    let res = api
        .http
        .post(format!("{}/api/v1/pipelines:validate", api.base))
        .bearer_auth(API_KEY)
        .header("content-type", "application/yaml")
        .body(bad)
        .send()
        .await?;
    let status = res.status();
    let text = res.text().await?;
    ensure!(
        status == 422 && text.contains("invalid_spec") && text.contains("no_such_fn"),
        "validate of an unknown function: {status} {text}"
    );
    // A source filter outside the declared stream's subjects (`order.>` on `orders.>`).
    let outside = bad
        .replace("orders.created.>", "order.created.>")
        .replace("no_such_fn(data.temp_c) > 1", "data.temp_c > 1");
    let file = dir.join("outside.yaml");
    std::fs::write(&file, &outside)?;
    let (code, out) = weir_cli_any(dir, base, &["apply", "-f", file.to_str().unwrap()])?;
    ensure!(
        code != Some(0) && out.contains("lies outside the subjects of stream `ORDERS`"),
        "apply of a filter outside its stream: {out}"
    );
    // A source stream that exists nowhere: applied (it may come later), but not deployed.
    let missing = outside
        .replace("stream: ORDERS", "stream: NOPE")
        .replace("name: iot", "name: iot-missing");
    std::fs::write(&file, &missing)?;
    weir_cli(dir, base, &["apply", "-f", file.to_str().unwrap()])?;
    let (code, out) = weir_cli_any(dir, base, &["deploy", "iot-missing"])?;
    ensure!(
        code != Some(0)
            && out.contains("the source stream `NOPE`")
            && out.contains("does not exist"),
        "deploy on a missing stream: {out}"
    );
    weir_cli(dir, base, &["delete", "pipeline", "iot-missing"])?;
    Ok(())
}

async fn consumer_settled(js: &jetstream::Context) -> Result<(Option<()>, String)> {
    let info = js
        .get_stream("ORDERS")
        .await?
        .consumer_info(CONSUMER)
        .await?;
    let seen = format!(
        "num_pending {} num_ack_pending {}",
        info.num_pending, info.num_ack_pending
    );
    Ok((
        (info.num_pending == 0 && info.num_ack_pending == 0).then_some(()),
        seen,
    ))
}

/// The summed counters of a status: (in, out, filtered, dead-lettered).
fn totals(status: &Value) -> (u64, u64, u64, u64) {
    let t = &status["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(0);
    (
        n("messages_in"),
        n("messages_out"),
        n("filtered"),
        n("dead_lettered"),
    )
}

async fn wait_status_totals(
    api: &TenantApi,
    want: (u64, u64, u64, u64),
    what: &str,
) -> Result<Value> {
    wait_for(what, Duration::from_secs(15), || async {
        let s = api.get(&format!("/pipelines/{PIPELINE}/status")).await?;
        let ok = s["running_workers"] == 2 && totals(&s) == want;
        let seen = format!(
            "running_workers {} totals (in, out, filtered, dead) {:?}",
            s["running_workers"],
            totals(&s)
        );
        Ok((ok.then_some(s), seen))
    })
    .await
}

async fn dlq_list(api: &TenantApi) -> Result<Value> {
    api.get(&format!("/pipelines/{PIPELINE}/dlq?limit=500"))
        .await
}

#[test]
fn the_api_path_end_to_end() -> Result<()> {
    block_on(async {
        let started = Instant::now();
        let nats = NatsServer::start()?;
        let url = nats.url();
        let dir = std::env::temp_dir().join(format!(
            "weir-fleet-api-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        let result = run(&url, &dir).await;
        if result.is_ok() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        eprintln!("fleet_api: {:.1} s", started.elapsed().as_secs_f64());
        result
    })
}

async fn run(url: &str, dir: &Path) -> Result<()> {
    // 1. The control plane as a process.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let data_dir = dir.join("data");
    let data_dir = data_dir.to_str().context("UTF-8 temp dir")?;
    let mut serve = Proc::spawn(
        dir,
        "serve",
        &[
            "serve",
            "--nats",
            url,
            "--addr",
            &addr,
            "--data-dir",
            data_dir,
        ],
        &[("WEIR_BOOTSTRAP_API_KEY", API_KEY)],
    )?;
    let base = format!("http://{addr}");
    let api = TenantApi {
        base: base.clone(),
        key: API_KEY.to_string(),
        http: reqwest::Client::new(),
    };
    wait_healthy(&api.http, &base, &serve, Duration::from_secs(15)).await?;

    // 2. Streams and the pipeline, as a user applies them.
    // `-f -` reads them from standard input.
    let applied = weir_cli_stdin(dir, &base, &["apply", "-f", "-"], RESOURCES)?;
    for line in [
        "stream/ORDERS created",
        "stream/OUT created",
        "pipeline/orders-api created",
    ] {
        ensure!(applied.contains(line), "weir apply printed {applied:?}");
    }

    // Applied streams exist on NATS at once, before any deployment.
    {
        let js = jetstream::new(async_nats::connect(url).await?);
        for name in ["ORDERS", "OUT"] {
            ensure!(
                js.get_stream(name).await.is_ok(),
                "stream {name} on NATS after apply"
            );
        }
    }

    // 3. Deployed before any worker runs: honestly `pending`, not `running`.
    let pending = weir_cli(dir, &base, &["deploy", PIPELINE, "--wait", "1s"])?;
    ensure!(
        pending.contains("deployed pipeline/orders-api version 1")
            && pending.contains(": pending (no live worker has picked it up yet"),
        "weir deploy without workers printed {pending:?}"
    );
    // Two workers, then the deployment again: it waits until they run it.
    let mut workers = vec![
        Proc::spawn(dir, "w1", &["worker", "--nats", url, "--id", "e2e-w1"], &[])?,
        Proc::spawn(dir, "w2", &["worker", "--nats", url, "--id", "e2e-w2"], &[])?,
    ];
    // The URL as `weir dev` prints it, with `/api/v1`, works too. Deploy waits for the
    // workers and says what they do.
    let deployed = weir_cli(dir, &format!("{base}/api/v1"), &["deploy", PIPELINE])?;
    ensure!(
        deployed.contains("deployed pipeline/orders-api version 1")
            && deployed.contains(": running on"),
        "weir deploy printed {deployed:?}"
    );
    wait_for(
        "2 running workers in the pipeline's status",
        Duration::from_secs(20),
        || async {
            let s = api.get(&format!("/pipelines/{PIPELINE}/status")).await?;
            let seen = format!("{s}");
            Ok(((s["running_workers"] == 2).then_some(()), seen))
        },
    )
    .await
    .map_err(|e| {
        let logs: Vec<String> = workers.iter().map(Proc::log_text).collect();
        e.context(logs.join("\n----\n"))
    })?;

    // 3b. What cannot run is refused before it is deployed, and the fleet is in view.
    refusals(&api, dir, &base).await?;
    failed_start(url, dir, &base).await?;
    let overview = weir_cli(dir, &base, &["status"])?;
    ensure!(
        overview.contains(PIPELINE) && overview.contains("workers: 2 alive"),
        "weir status printed {overview:?}"
    );
    let listed = weir_cli(dir, &base, &["get", "workers"])?;
    ensure!(
        listed.contains("e2e-w1") && listed.contains("e2e-w2") && listed.contains(PIPELINE),
        "weir get workers printed {listed:?}"
    );
    let listed = weir_cli(dir, &base, &["get", "deployments"])?;
    ensure!(
        listed
            .lines()
            .any(|l| l.starts_with(PIPELINE) && l.contains("running")),
        "weir get deployments printed {listed:?}"
    );
    let listed = weir_cli(dir, &base, &["get", "pipelines"])?;
    ensure!(
        listed.contains("DEPLOYED") && listed.contains("v1 running"),
        "weir get pipelines printed {listed:?}"
    );

    // 4. Traffic: passed, filtered and undecodable inputs.
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client);
    let mut seqs = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    for i in 0..N {
        while in_flight.len() >= 256 {
            let (i, seq): (u64, u64) = in_flight.next().await.expect("in flight")?;
            seqs.insert(i, seq);
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("in-{i}").as_str());
        let ack = js
            .publish_with_headers("orders.created.eu", headers, payload(i).into())
            .await?;
        in_flight.push(async move { anyhow::Ok((i, ack.await?.sequence)) });
    }
    while let Some(r) = in_flight.next().await {
        let (i, seq) = r?;
        seqs.insert(i, seq);
    }
    let count = |kind| (0..N).filter(|&i| input(i) == kind).count() as u64;
    let (passed, filtered, invalid) = (
        count(Input::Passed),
        count(Input::Filtered),
        count(Input::Invalid),
    );
    wait_for(
        "the pipeline's consumer to settle",
        Duration::from_secs(30),
        || consumer_settled(&js),
    )
    .await?;
    let status = wait_status_totals(
        &api,
        (N, passed, filtered, invalid),
        "status totals (in, out, filtered, dead) adding up to the inputs",
    )
    .await?;
    // Dead letters are data errors of their messages, handled as designed: shown, but the
    // pipeline stays healthy.
    ensure!(
        status["health"] == "healthy"
            && status["last_dead_letter"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("(decode)"))
            && status["last_error"].is_null(),
        "status: {status:#}"
    );
    // No redelivery here: deliveries are the messages.
    ensure!(
        status["totals"]["deliveries"] == status["totals"]["messages_in"],
        "status: {status:#}"
    );
    let workers_json = status["workers"].as_array().context("workers")?;
    ensure!(workers_json.len() == 2, "status: {status:#}");
    for w in workers_json {
        ensure!(
            w["alive"] == true
                && w["state"] == "running"
                && w["counters"]["messages_in"].as_u64() > Some(0),
            "each worker runs it and got a share: {w:#}"
        );
    }

    let out = read_all(&js, "OUT").await?;
    let mut ids = BTreeSet::new();
    let mut msg_ids = BTreeSet::new();
    for m in &out {
        let v: Value = serde_json::from_slice(&m.payload)?;
        let id = v["id"].as_u64().context("output id")?;
        ensure!(
            input(id) == Input::Passed,
            "input {id} should not be output: {v}"
        );
        ensure!(
            v["tier"] == "checked" && v["amount_cents"].as_u64() == Some((id + 1) * 100),
            "output of {id} is mapped: {v}"
        );
        let msg_id = m.headers["Nats-Msg-Id"].clone();
        ensure!(
            msg_id == format!("{PIPELINE}:ORDERS:{}:0", seqs[&id]),
            "output of {id} has id {msg_id}"
        );
        ensure!(ids.insert(id), "input {id} has two outputs");
        ensure!(
            msg_ids.insert(msg_id.clone()),
            "duplicate Nats-Msg-Id {msg_id}"
        );
    }
    ensure!(
        ids.len() as u64 == passed,
        "{} outputs, {passed} expected",
        ids.len()
    );

    // 5. The DLQ through the API.
    let list = dlq_list(&api).await?;
    ensure!(
        list["total"] == invalid
            && list["groups"]
                == json!([{
                    "kind": "decode",
                    "count": invalid,
                    "last_error": list["groups"][0]["last_error"],
                    "last_seq": list["groups"][0]["last_seq"],
                }]),
        "the DLQ groups {invalid} entries under `decode`: {list:#}"
    );
    let entries = list["entries"].as_array().context("entries")?;
    ensure!(entries.len() as u64 == invalid, "{list:#}");
    let dlq_seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let source_seqs: BTreeSet<u64> = entries
        .iter()
        .map(|e| e["source_seq"].as_u64().unwrap())
        .collect();
    let invalid_seqs: BTreeSet<u64> = (0..N)
        .filter(|&i| input(i) == Input::Invalid)
        .map(|i| seqs[&i])
        .collect();
    ensure!(
        source_seqs == invalid_seqs,
        "DLQ entries are the invalid inputs"
    );

    // Pages through the CLI: a full page says how to get the next one.
    let page = weir_cli(dir, &base, &["dlq", "ls", PIPELINE, "--limit", "2"])?;
    let more = format!(
        "more: weir dlq ls {PIPELINE} --limit 2 --cursor {}",
        dlq_seqs[1]
    );
    ensure!(page.contains(&more), "weir dlq ls printed {page:?}");
    let cursor = dlq_seqs[1].to_string();
    let next = weir_cli(
        dir,
        &base,
        &["dlq", "ls", PIPELINE, "--limit", "2", "--cursor", &cursor],
    )?;
    ensure!(
        next.lines()
            .any(|l| l.trim_start().starts_with(&format!("{} ", dlq_seqs[2])))
            && !next
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{} ", dlq_seqs[1]))),
        "the second page starts after the cursor: {next:?}"
    );

    let edited = api
        .ok(
            reqwest::Method::POST,
            &format!("/pipelines/{PIPELINE}/dlq/redrive"),
            Some(json!({
                "seqs": [dlq_seqs[0]],
                "payload": "{\"id\":100000,\"amount\":2.5,\"status\":\"pending\"}",
            })),
        )
        .await?;
    ensure!(
        edited["redriven"].as_array().map(Vec::len) == Some(1) && edited["failed"] == json!([]),
        "edited redrive: {edited:#}"
    );
    let edited_seq = edited["redriven"][0]["stream_seq"]
        .as_u64()
        .context("stream_seq")?;
    // The rest, by error kind, through the CLI.
    let rest = weir_cli(
        dir,
        &base,
        &["dlq", "redrive", PIPELINE, "--kind", "decode"],
    )?;
    ensure!(
        rest.lines().filter(|l| l.starts_with("redriven ")).count() == dlq_seqs.len() - 1,
        "redrive --kind decode printed {rest:?}"
    );
    let expect_id = format!("{PIPELINE}:ORDERS:{edited_seq}:0");
    let redriven_out = wait_for(
        "the edited entry's output on OUT",
        Duration::from_secs(15),
        || async {
            let out = read_all(&js, "OUT").await?;
            let seen = format!("{} outputs", out.len());
            Ok((
                out.into_iter()
                    .find(|m| m.headers.get("Nats-Msg-Id") == Some(&expect_id)),
                seen,
            ))
        },
    )
    .await?;
    let v: Value = serde_json::from_slice(&redriven_out.payload)?;
    ensure!(
        v["id"] == 100000 && v["tier"] == "checked" && v["amount_cents"] == 250,
        "{v}"
    );
    let again = wait_for(
        "the unedited entries back in the DLQ",
        Duration::from_secs(15),
        || async {
            let l = dlq_list(&api).await?;
            let seen = format!("total {} groups {}", l["total"], l["groups"]);
            let ok = l["total"] == invalid - 1 && l["groups"][0]["count"] == invalid - 1;
            Ok((ok.then_some(l), seen))
        },
    )
    .await?;
    ensure!(
        again["groups"].as_array().map(Vec::len) == Some(1)
            && again["groups"][0]["kind"] == "decode",
        "{again:#}"
    );
    ensure!(
        again["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_u64() > dlq_seqs.last().copied()),
        "new entries, the old ones removed: {again:#}"
    );
    // Each one failed again and names the entry it was redriven from.
    let earlier: BTreeSet<u64> = again["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["redrive_of"].as_u64())
        .collect();
    ensure!(
        earlier == dlq_seqs[1..].iter().copied().collect::<BTreeSet<u64>>(),
        "Weir-Redrive-Of links each new entry to its earlier one: {again:#}"
    );
    wait_for(
        "the consumer to settle after the redrive",
        Duration::from_secs(15),
        || consumer_settled(&js),
    )
    .await?;
    ensure!(
        read_all(&js, "OUT").await?.len() as u64 == passed + 1,
        "exactly one more output"
    );
    wait_status_totals(
        &api,
        (N + invalid, passed + 1, filtered, 2 * invalid - 1),
        "status totals counting the redriven inputs",
    )
    .await?;

    let purged = api
        .ok(
            reqwest::Method::DELETE,
            &format!("/pipelines/{PIPELINE}/dlq"),
            None,
        )
        .await?;
    ensure!(purged["purged"] == invalid - 1, "purge: {purged:#}");
    let empty = dlq_list(&api).await?;
    ensure!(
        empty["total"] == 0 && empty["groups"] == json!([]),
        "after the purge: {empty:#}"
    );

    // 6. Delete: the consumer goes, the dead letters stay reachable, a stream holding data
    // needs --force.
    js.publish("orders.created.eu", payload(7).into())
        .await?
        .await?;
    wait_for("one new dead letter", Duration::from_secs(15), || async {
        let l = dlq_list(&api).await?;
        Ok(((l["total"] == 1).then_some(()), format!("{}", l["total"])))
    })
    .await?;
    weir_cli(dir, &base, &["undeploy", PIPELINE])?;
    let deleted = weir_cli(dir, &base, &["delete", "pipeline", PIPELINE])?;
    ensure!(
        deleted.contains("pipeline/orders-api deleted"),
        "weir delete printed {deleted:?}"
    );
    ensure!(
        js.get_stream("ORDERS")
            .await?
            .consumer_info(CONSUMER)
            .await
            .is_err(),
        "the consumer went with the pipeline"
    );
    let listed = weir_cli(dir, &base, &["dlq", "ls", PIPELINE])?;
    ensure!(
        listed.contains("1 dead letter(s)"),
        "the deleted pipeline's dead letters: {listed:?}"
    );
    let (code, refused) = weir_cli_any(dir, &base, &["delete", "stream", "OUT"])?;
    ensure!(
        code != Some(0) && refused.contains("--force"),
        "delete of a stream holding messages: {refused:?}"
    );
    ensure!(js.get_stream("OUT").await.is_ok(), "OUT stays");
    let deleted = weir_cli(dir, &base, &["delete", "stream", "OUT", "--force"])?;
    ensure!(deleted.contains("stream/OUT deleted"), "{deleted:?}");
    ensure!(js.get_stream("OUT").await.is_err(), "OUT gone from NATS");

    // 7. SIGTERM: both workers exit 0.
    for w in &mut workers {
        let status = w.sigterm(Duration::from_secs(15))?;
        ensure!(
            status.success(),
            "{} exit status {status}; log:\n{}",
            w.name,
            w.log_text()
        );
    }
    let status = serve.sigterm(Duration::from_secs(10))?;
    ensure!(status.success(), "weir serve exit status {status}");
    Ok(())
}
