//! `weir nats-setup` makes a working operator-mode deployment: a nats-server that includes
//! its `accounts.conf`, `weir serve --nats-keys` on its seeds (a new tenant gets an account),
//! and its `worker.creds` reaching Weir's internal account.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use crate::fleet_api::{Proc, wait_for};
use crate::fleet_support::{block_on, weir_binary};

/// A nats-server child, killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn nats_setup_makes_a_working_operator_mode_deployment() -> Result<()> {
    block_on(async {
        let dir = tempfile::Builder::new()
            .prefix("weir-nats-setup-")
            .tempdir()?;
        run(dir.path()).await
    })
}

async fn run(dir: &Path) -> Result<()> {
    let keys = dir.join("keys");
    let out = Command::new(weir_binary())
        .args(["nats-setup", "--keys"])
        .arg(&keys)
        .arg("--resolver-dir")
        .arg(dir.join("jwt"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.contains("--nats-keys") && stdout.contains("worker.creds"),
        "{stdout}"
    );
    // A second run keeps the seeds.
    let operator = std::fs::read_to_string(keys.join("operator.nk"))?;
    let again = Command::new(weir_binary())
        .args(["nats-setup", "--keys"])
        .arg(&keys)
        .arg("--resolver-dir")
        .arg(dir.join("jwt"))
        .output()?;
    ensure!(again.status.success());
    ensure!(std::fs::read_to_string(keys.join("operator.nk"))? == operator);

    // The server, configured as the command says.
    std::fs::create_dir_all(dir.join("jwt"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "jetstream {{ store_dir: \"{}\" }}\ninclude \"keys/accounts.conf\"\n",
            dir.join("store").display()
        ),
    )?;
    let log = std::fs::File::create(dir.join("nats.log"))?;
    let _server = Server(
        Command::new(weir_testkit::nats::nats_server_binary()?)
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let url = format!("nats://127.0.0.1:{port}");
    let creds = std::fs::read_to_string(keys.join("worker.creds"))?;
    let internal = wait_for("nats-server up", Duration::from_secs(15), || async {
        Ok(
            match async_nats::ConnectOptions::with_credentials(&creds)?
                .connect(&url)
                .await
            {
                Ok(c) => (Some(c), String::new()),
                Err(e) => (
                    None,
                    format!(
                        "{e}; log: {}",
                        std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default()
                    ),
                ),
            },
        )
    })
    .await?;
    let js = async_nats::jetstream::new(internal);

    // weir serve on the seeds: a tenant gets its own account, the fleet buckets are in Weir's.
    const KEY: &str = "weir_e2eNatsSetupTestKey0123456789abcdefghijklmnop";
    let addr = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    );
    let serve = Proc::spawn(
        dir,
        "serve",
        &[
            "serve",
            "--nats",
            &url,
            "--nats-keys",
            keys.to_str().context("UTF-8")?,
            "--addr",
            &addr,
            "--data-dir",
            dir.join("data").to_str().context("UTF-8")?,
        ],
        &[("WEIR_BOOTSTRAP_API_KEY", KEY)],
    )?;
    let http = reqwest::Client::new();
    let created = wait_for("a tenant created", Duration::from_secs(20), || async {
        let res = http
            .post(format!("http://{addr}/api/v1/tenants"))
            .bearer_auth(KEY)
            .json(&json!({"name": "acme", "admin": {"email": "a@acme.test"}}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        Ok(match res {
            Ok(r) if r.status().as_u16() == 201 => {
                (Some(r.json::<serde_json::Value>().await?), String::new())
            }
            Ok(r) => (
                None,
                format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            ),
            Err(e) => (None, format!("{e}; {}", serve.log_text())),
        })
    })
    .await?;
    let tenant_key = created["admin_api_key"].as_str().context("key")?;
    let res = http
        .get(format!("http://{addr}/api/v1/nats/streams"))
        .bearer_auth(tenant_key)
        .send()
        .await?;
    ensure!(res.status().is_success(), "{}", res.text().await?);
    let accounts = js.get_key_value("weir_accounts").await?;
    ensure!(
        accounts.get("acme").await?.is_some(),
        "the tenant's account is recorded in Weir's internal account"
    );
    Ok(())
}
