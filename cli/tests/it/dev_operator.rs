//! `weir dev` with one command: it starts its nats-server in operator mode (keys generated
//! under the data dir), the control plane and a worker; the example pipelines run on sample
//! orders inside the dev tenant's own NATS account, and a client without credentials is
//! refused by the server.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use crate::fleet_api::{Proc, wait_for};
use crate::fleet_support::block_on;

/// Kills the nats-server that `weir dev` started (its pid file) when the test ends, even when
/// `weir dev` itself was killed before it could stop it.
struct NatsPidGuard(std::path::PathBuf);

impl Drop for NatsPidGuard {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(&self.0) else {
            return;
        };
        let pid = pid.trim();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "nats-server" {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .status();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[test]
fn weir_dev_runs_pipelines_in_operator_mode() -> Result<()> {
    block_on(async {
        let dir = tempfile::Builder::new().prefix("weir-dev-op-").tempdir()?;
        let result = run(dir.path()).await;
        if result.is_err() {
            let _ = dir.keep();
        }
        result
    })
}

async fn run(dir: &Path) -> Result<()> {
    let data = dir.join("data");
    let nats_port = free_port()?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/examples");
    let nats_server = weir_testkit::nats::nats_server_binary()?;
    let _guard = NatsPidGuard(data.join("nats.pid"));
    let mut dev = Proc::spawn(
        dir,
        "dev",
        &[
            "dev",
            "--data-dir",
            data.to_str().context("UTF-8")?,
            "--nats-port",
            &nats_port.to_string(),
            "--addr",
            &addr,
            "--examples",
            examples.to_str().context("UTF-8")?,
            "--rate",
            "50",
        ],
        &[("WEIR_NATS_SERVER", nats_server.to_str().context("UTF-8")?)],
    )?;

    // The API answers with the dev key; a pipeline processes sample orders.
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1");
    let status = wait_for(
        "order-processing running with outputs",
        Duration::from_secs(60),
        || async {
            let Ok(key) = std::fs::read_to_string(data.join("dev-api-key")) else {
                return Ok((None, format!("no API key yet; log: {}", dev.log_text())));
            };
            let res = http
                .get(format!("{base}/pipelines/order-processing/status"))
                .bearer_auth(key.trim())
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            let Ok(res) = res else {
                return Ok((None, "API not up".into()));
            };
            let s: Value = res.json().await.unwrap_or(Value::Null);
            let out = s["totals"]["messages_out"].as_u64().unwrap_or(0);
            Ok((
                (s["running_workers"] == 1 && out > 0).then_some(s.clone()),
                format!("{s}; log: {}", dev.log_text()),
            ))
        },
    )
    .await?;
    ensure!(status["health"] != "failed", "{status:#}");

    // Operator mode: keys under the data dir, and the server refuses a client without
    // credentials.
    ensure!(data.join("nats-keys/operator.nk").is_file());
    let anonymous = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::connect(format!("nats://127.0.0.1:{nats_port}")),
    )
    .await;
    let refused = !matches!(anonymous, Ok(Ok(_)));
    ensure!(refused, "a client without credentials was let in");
    // The dev tenant's credentials, saved for the user, reach its streams.
    let creds = std::fs::read_to_string(data.join("nats-keys/dev.creds"))?;
    let client = async_nats::ConnectOptions::with_credentials(&creds)?
        .connect(format!("nats://127.0.0.1:{nats_port}"))
        .await?;
    let mut orders = async_nats::jetstream::new(client)
        .get_stream("ORDERS")
        .await?;
    ensure!(orders.info().await?.state.messages > 0, "no sample orders");

    let status = dev.sigterm(Duration::from_secs(20))?;
    ensure!(status.success(), "weir dev: {status}; {}", dev.log_text());
    ensure!(
        !data.join("nats.pid").exists()
            || std::fs::read_to_string(data.join("nats.pid"))
                .map(|pid| { !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists() })
                .unwrap_or(true),
        "nats-server still running after weir dev stopped"
    );
    Ok(())
}
