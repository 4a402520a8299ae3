//! The nats-server of `weir dev`: started through the shared launcher
//! ([`weir_connectors::nats_server`]) on a fixed port, in operator mode unless `--plain-nats`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use weir_connectors::accounts::OperatorKeys;
use weir_connectors::nats_server::{self, LaunchSpec, OperatorMode, RunningServer};

use super::keys_dir;

/// Starts nats-server with JetStream under `<data dir>/nats`, on 127.0.0.1:`port`, with its
/// monitoring endpoint on a free port; in operator mode (`keys`) trusting that operator, with
/// a full account resolver under `<data dir>/nats-jwt`. Its pid goes to `<data dir>/nats.pid`,
/// its log to `<data dir>/nats.log`.
pub(super) fn start(
    data_dir: &Path,
    port: u16,
    keys: Option<&OperatorKeys>,
) -> Result<RunningServer> {
    let binary = nats_server::find_binary(&[PathBuf::from(".tools/bin/nats-server")])
        .map_err(|e| anyhow::anyhow!("{e}; or give --nats URL of a running server"))?;
    // Its monitoring endpoint (`/varz`, `/jsz`, …) on a free port.
    let monitor = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let spec = LaunchSpec {
        store_dir: data_dir.join("nats"),
        port: Some(port),
        monitor_port: Some(monitor),
        pid_file: Some(data_dir.join("nats.pid")),
        operator: keys.map(|keys| OperatorMode {
            keys,
            jwt_file: keys_dir(data_dir).join("operator.jwt"),
            resolver_dir: data_dir.join("nats-jwt"),
        }),
        // Ctrl-C in the terminal reaches `weir dev` only, which stops the worker first and the
        // server last.
        own_process_group: true,
        start_timeout: Duration::from_secs(15),
        ..LaunchSpec::new(binary.clone(), data_dir)
    };
    // A fresh log each run.
    let _ = std::fs::remove_file(spec.log_file());
    let server = spec.launch().with_context(|| {
        format!("starting nats-server on port {port} (in use? see --nats-port)")
    })?;
    println!(
        "[weir dev] nats-server {} on {}, store {}, {}",
        binary.display(),
        server.url(),
        spec.store_dir.display(),
        if keys.is_some() {
            "operator mode (one NATS account per tenant)"
        } else {
            "no accounts (tenants not isolated on NATS)"
        }
    );
    println!("[weir dev] NATS monitoring: http://127.0.0.1:{monitor}/varz (and /jsz)");
    Ok(server)
}
