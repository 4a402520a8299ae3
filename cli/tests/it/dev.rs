//! `weir dev` as a user starts it (with its own nats-server, on free ports): it prints a
//! ready-to-paste `export WEIR_URL=… WEIR_API_KEY=…` line that the CLI works with as printed,
//! serves `/metrics` with the control plane's and the in-process worker's metrics, turns on
//! the nats-server's monitoring, and prints a compact screen.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

use crate::fleet_support::{block_on, weir_binary};
use crate::process::sigterm_and_wait;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn dev_prints_an_export_line_and_serves_metrics() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let free_port = || -> Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (port, nats_port) = (free_port()?, free_port()?);
    let out = dir.path().join("dev.out");
    let mut child = Command::new(weir_binary())
        .args([
            "dev",
            "--nats-port",
            &nats_port.to_string(),
            "--data-dir",
            dir.path().join("data").to_str().context("UTF-8")?,
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--examples",
            repo()
                .join("pipelines/examples")
                .to_str()
                .context("UTF-8")?,
            "--rate",
            "50",
        ])
        .env("HOME", dir.path())
        .env(
            "WEIR_NATS_SERVER",
            weir_testkit::nats::nats_server_binary()?,
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(dir.path().join("dev.err"))?)
        .spawn()?;
    let result = check(dir.path(), &out);
    let status = sigterm_and_wait(&mut child, Duration::from_secs(20))?;
    result.with_context(|| {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(&out).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("dev.err")).unwrap_or_default()
        )
    })?;
    ensure!(
        status.is_some_and(|s| s.success()),
        "weir dev exit: {status:?}"
    );
    Ok(())
}

fn check(dir: &Path, out: &Path) -> Result<()> {
    // The export line, as printed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (url, key) = loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.trim_start().starts_with("export WEIR_URL="))
        {
            let mut url = None;
            let mut key = None;
            for word in line.split_whitespace() {
                if let Some(v) = word.strip_prefix("WEIR_URL=") {
                    url = Some(v.to_string());
                }
                if let Some(v) = word.strip_prefix("WEIR_API_KEY=") {
                    key = Some(v.to_string());
                }
            }
            break (url.context("WEIR_URL")?, key.context("WEIR_API_KEY")?);
        }
        if Instant::now() > deadline {
            bail!("no export line");
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    // The CLI works with it, and with the `/api/v1` URL the banner shows too.
    for base in [url.clone(), format!("{url}/api/v1")] {
        let got = Command::new(weir_binary())
            .args(["get", "pipelines"])
            .env("WEIR_URL", &base)
            .env("WEIR_API_KEY", &key)
            .env("HOME", dir)
            .output()?;
        let text = String::from_utf8_lossy(&got.stdout);
        ensure!(
            got.status.success() && text.contains("DEPLOYED") && text.contains("order-processing"),
            "weir get pipelines with WEIR_URL={base}: {text} {}",
            String::from_utf8_lossy(&got.stderr)
        );
    }

    // The windowed example runs on the worker: its status shows the state it holds and its
    // checkpoints.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = Command::new(weir_binary())
            .args(["status", "order-metrics"])
            .env("WEIR_URL", &url)
            .env("WEIR_API_KEY", &key)
            .env("HOME", dir)
            .output()?;
        let text = String::from_utf8_lossy(&got.stdout);
        if text.contains("state: ") && text.contains("last checkpoint 20") {
            ensure!(!text.contains("state: 0 windows open"), "{text}");
            break;
        }
        if Instant::now() > deadline {
            bail!("order-metrics never reported its state: {text}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // The seed's order schema is registered (`pipelines/examples/schemas`).
    let got = Command::new(weir_binary())
        .args(["schema", "get", "orders"])
        .env("WEIR_URL", &url)
        .env("WEIR_API_KEY", &key)
        .env("HOME", dir)
        .output()?;
    let text = String::from_utf8_lossy(&got.stdout);
    ensure!(
        got.status.success() && text.contains("\"order_id\""),
        "weir schema get orders: {text} {}",
        String::from_utf8_lossy(&got.stderr)
    );

    let text = std::fs::read_to_string(out)?;
    let monitoring = text
        .lines()
        .find_map(|l| l.strip_prefix("[weir dev] NATS monitoring: "))
        .and_then(|rest| rest.split_whitespace().next())
        .context("the NATS monitoring line")?
        .to_string();

    // `/metrics`: the control plane's and the worker's, once messages flow.
    block_on(async move {
        let http = reqwest::Client::new();
        let varz = http.get(&monitoring).send().await?.text().await?;
        ensure!(varz.contains("server_id"), "{monitoring}: {varz}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = http
                .get(format!("{url}/metrics"))
                .send()
                .await?
                .text()
                .await?;
            if text.contains("weir_api_requests_total")
                && text.contains("weir_fleet_workers{state=\"alive\"} 1")
                && text.contains("weir_messages_in_total{pipeline=")
            {
                ensure!(text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1);
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("/metrics never showed both: {text}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })?;

    // The screen (every 5 s): a counter line, then one line per pipeline.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(out)?;
        let lines: Vec<&str> = text.lines().collect();
        if let Some(i) = lines
            .iter()
            .position(|l| l.starts_with("[weir dev] sample orders published:"))
            && lines.len() > i + 3
        {
            ensure!(
                lines[i + 1].trim_start().starts_with("order-metrics")
                    && lines[i + 2].trim_start().starts_with("order-processing")
                    && lines[i + 3].trim_start().starts_with("order-routing"),
                "one line per pipeline: {text}"
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no status screen");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
