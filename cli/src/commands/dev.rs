//! `weir dev`: the whole system on one machine. Starts a local nats-server child process
//! (JetStream store under `<data dir>/nats`) unless `--nats` is given, the control plane
//! in-process on SQLite under the data dir, one in-process fleet worker; applies the example
//! pipeline files through the API, deploys their pipelines, and runs a small generator of
//! sample orders. Prints where the API listens and a status line every few seconds; Ctrl-C
//! (or SIGTERM) stops everything cleanly.
//!
//! The nats-server it starts runs in operator mode (keys generated once under
//! `<data dir>/nats-keys`), so each tenant gets its own NATS account as in production;
//! `--plain-nats`, or `--nats` with a server without accounts, is the single-tenant mode.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use reqwest::Method;
use tokio_util::sync::CancellationToken;
use weir_connectors::accounts::OperatorKeys;
use weir_connectors::fleet::{PipelineReport, now_ms};
use weir_connectors::nats_server::{self, LaunchSpec, OperatorMode, RunningServer};
use weir_control_plane::{SecretKeySource, ServeConfig};

use super::apply;
use super::client::Client;
use super::run::wait_for_signal;

/// How often the status line is printed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Arguments of `weir dev`.
#[derive(clap::Args)]
pub struct Args {
    /// Use this NATS server instead of starting one.
    #[arg(long)]
    pub nats: Option<String>,
    /// Port of the nats-server that `weir dev` starts.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    /// Data directory: SQLite store, secret key, dev API key, NATS store and log.
    #[arg(long, default_value = ".weir", env = "WEIR_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Listen address of the control plane API.
    #[arg(long, default_value = "127.0.0.1:7070", env = "WEIR_ADDR")]
    pub addr: SocketAddr,
    /// Pipeline files to apply and deploy (every `*.yaml` / `*.yml` in this folder).
    #[arg(long, default_value = "pipelines/examples")]
    pub examples: PathBuf,
    /// Sample orders generated per second (0: none).
    #[arg(long, default_value_t = 20)]
    pub rate: u64,
    /// Start the embedded nats-server without accounts (one shared account: tenants are not
    /// isolated on NATS). By default it runs in operator mode, one account per tenant.
    #[arg(long)]
    pub plain_nats: bool,
}

/// The operator keys of the embedded nats-server: `<data dir>/nats-keys`.
fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("nats-keys")
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,weir_runtime::fleet=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let signal = tokio::spawn(wait_for_signal());
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                let _ = signal.await;
                println!("[weir dev] stopping…");
                stop.cancel();
            });
        }
        let (nats_url, nats_child, keys) = match &args.nats {
            Some(url) => (url.clone(), None, None),
            None => {
                let keys = if args.plain_nats {
                    None
                } else {
                    Some(
                        OperatorKeys::load_or_generate(&keys_dir(&args.data_dir))
                            .context("NATS operator keys")?,
                    )
                };
                let server = start_nats(&args.data_dir, args.nats_port, keys.as_ref())?;
                (server.url(), Some(server), keys)
            }
        };
        let result = run_dev(&args, &nats_url, keys, stop.clone()).await;
        stop.cancel();
        if let Some(mut server) = nats_child {
            server.stop(Duration::from_secs(10));
        }
        result.map(|()| 0)
    })
}

async fn run_dev(
    args: &Args,
    nats_url: &str,
    keys: Option<OperatorKeys>,
    stop: CancellationToken,
) -> Result<()> {
    let api_key = dev_api_key(&args.data_dir)?;
    let config = ServeConfig {
        addr: args.addr,
        data_dir: args.data_dir.clone(),
        database_url: None,
        secret_key: SecretKeySource::DataDir,
        bootstrap_api_key: Some(api_key.clone()),
        body_limit: 1024 * 1024,
        nats_url: Some(nats_url.to_string()),
        // The embedded NATS runs in operator mode: one account per tenant. On a server without
        // accounts (`--plain-nats`, `--nats`) tenants share it: allowed here, with a warning.
        nats_keys: keys.as_ref().map(|_| keys_dir(&args.data_dir)),
        allow_shared_nats: true,
        nats_revoke_after: weir_control_plane::nats::DEFAULT_REVOKE_AFTER,
    };
    let control_plane = tokio::spawn(weir_control_plane::server::serve_until(
        config,
        stop.clone().cancelled_owned(),
    ));
    let base = format!("http://{}", args.addr);
    let api = Client::new(&base, &api_key);
    wait_for_api(&api, &control_plane).await?;

    // Apply the examples through the API; create their streams in NATS (in operator mode the
    // deploys below create them in the tenant's account).
    let files = example_files(&args.examples)?;
    let resources = apply::load(&files)?;
    if keys.is_none() {
        let client = weir_connectors::connect(nats_url, "weir dev").await?;
        let js = async_nats::jetstream::new(client);
        for resource in &resources {
            if let weir_pipelines::Resource::Stream(stream) = resource {
                weir_connectors::ensure_stream(&js, stream)
                    .await
                    .with_context(|| format!("creating stream {}", stream.metadata.name))?;
            }
        }
    }
    let outcomes = apply::send_all(&api, &resources, false).await?;
    for o in &outcomes {
        println!("[weir dev] {}/{} {}", o.kind, o.name, o.result);
    }

    // Deploy through the API, as a user would: quotas and audit apply.
    for resource in &resources {
        let weir_pipelines::Resource::Pipeline(pipeline) = resource else {
            continue;
        };
        let name = &pipeline.metadata.name;
        let reply = api
            .send(
                Method::POST,
                &format!("/pipelines/{name}/deploy"),
                Some(("application/json", "{}".to_string())),
                None,
            )
            .await
            .with_context(|| format!("deploying {name}"))?;
        let info: serde_json::Value = serde_json::from_str(&reply.text).unwrap_or_default();
        println!(
            "[weir dev] deployed pipeline/{name} (version {}, parallelism {})",
            info["version"], info["parallelism"]
        );
    }

    // The sample orders go into the dev tenant's account (operator mode: with the control
    // plane's credentials for it, from `weir_accounts` in Weir's internal account).
    let internal_creds = keys.as_ref().map(|k| k.internal_creds());
    let producer_creds = match &internal_creds {
        Some(creds) => Some(tenant_credentials(nats_url, creds).await?),
        None => None,
    };
    let creds_file = keys_dir(&args.data_dir).join("dev.creds");
    if let Some(creds) = &producer_creds {
        std::fs::write(&creds_file, creds)
            .with_context(|| format!("saving {}", creds_file.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(&creds_file, std::fs::Permissions::from_mode(0o600));
        }
    }
    let client = weir_connectors::connect_as(nats_url, "weir dev", producer_creds.as_deref())
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    let js = async_nats::jetstream::new(client.clone());

    // One in-process fleet worker (in Weir's internal account in operator mode; each pipeline
    // then runs on its deployment's credentials).
    let worker_client =
        weir_connectors::connect_as(nats_url, "weir dev worker", internal_creds.as_deref()).await?;
    let metrics = Arc::new(weir_runtime::Metrics::new());
    // The worker's metrics are served with the control plane's, at `/metrics`.
    let served = metrics.clone();
    weir_control_plane::metrics::add_source(move || served.encode());
    let mut fleet_config = weir_runtime::FleetConfig::new(format!("dev-{}", std::process::id()))?;
    fleet_config.nats_url = Some(nats_url.to_string());
    let fleet = weir_runtime::FleetWorker::new(worker_client, fleet_config, metrics);
    let status = fleet.status();
    let worker = tokio::spawn(fleet.run(stop.clone()));

    let generated = Arc::new(AtomicU64::new(0));
    let generator = tokio::spawn(generate_orders(
        js.clone(),
        args.rate,
        generated.clone(),
        stop.clone(),
    ));
    println!("[weir dev] API:  {base}/api/v1   (API key: {api_key})");
    if weir_control_plane::console::is_built() {
        println!("[weir dev] Console: {base}/   (log in with the API key above)");
    } else {
        println!(
            "[weir dev] Console: {base}/ is not built: run `bash deploy/setup.sh` (needs npm), then rebuild weir"
        );
    }
    if producer_creds.is_some() {
        println!(
            "[weir dev] NATS: {nats_url}   (the dev tenant's account: nats --creds {})",
            creds_file.display()
        );
    } else {
        println!("[weir dev] NATS: {nats_url}");
    }
    println!("[weir dev] metrics: {base}/metrics (control plane and the in-process worker)");
    println!("[weir dev] to use the CLI from another shell, paste:");
    println!("  export WEIR_URL={base} WEIR_API_KEY={api_key}");
    println!(
        "[weir dev] sample orders: {} per second on orders.created.<region>; Ctrl-C stops",
        args.rate
    );

    let mut ticker = tokio::time::interval(STATUS_EVERY);
    ticker.tick().await;
    let mut screen = StatusScreen::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => print!("{}", screen.render(&status.reports(), generated.load(Ordering::Relaxed))),
        }
    }
    let _ = generator.await;
    match worker.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("[weir dev] worker: {err}"),
        Err(err) => eprintln!("[weir dev] worker task: {err}"),
    }
    match control_plane.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("[weir dev] control plane: {err}"),
        Err(err) => eprintln!("[weir dev] control plane task: {err}"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    println!("[weir dev] stopped");
    Ok(())
}

/// The status screen: one line per pipeline each tick, and each new error once (not again
/// every tick while it stays the last error).
#[derive(Default)]
struct StatusScreen {
    /// The last error shown, per pipeline.
    shown_errors: std::collections::HashMap<String, String>,
}

impl StatusScreen {
    fn render(&mut self, reports: &[PipelineReport], generated: u64) -> String {
        let mut out = format!("[weir dev] sample orders published: {generated}\n");
        let width = reports.iter().map(|p| p.pipeline.len()).max().unwrap_or(0);
        for p in reports {
            let c = &p.counters;
            out.push_str(&format!(
                "  {:width$}  {:8} v{:<3} in {:>8}  out {:>8}  filtered {:>7}  dlq {:>6}  lag {:>6}\n",
                p.pipeline,
                p.state,
                p.version,
                c.messages_in,
                c.messages_out,
                c.filtered,
                c.dead_lettered,
                p.lag
            ));
        }
        for p in reports {
            if let Some((error, _)) = &p.last_error
                && self.shown_errors.get(&p.pipeline) != Some(error)
            {
                // The first line of the error, once.
                let first = error.lines().next().unwrap_or_default();
                out.push_str(&format!("  ! {}: {first}\n", p.pipeline));
                self.shown_errors.insert(p.pipeline.clone(), error.clone());
            }
        }
        out
    }
}

/// Publishes sample orders (like the seed's: id, customer, region, amount, items).
async fn generate_orders(
    js: async_nats::jetstream::Context,
    rate: u64,
    generated: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    if rate == 0 {
        return;
    }
    const REGIONS: [&str; 5] = ["us-east", "us-west", "eu-west", "ap-south", "sa-east"];
    const STATUSES: [&str; 4] = ["pending", "pending", "pending", "cancelled"];
    let started = Instant::now();
    let mut n: u64 = 0;
    let mut seed: u64 = now_ms() | 1;
    let mut next = || {
        // xorshift: good enough for sample data, no dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while !stop.is_cancelled() {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        let region = REGIONS[(next() % REGIONS.len() as u64) as usize];
        let amount = (next() % 200_000) as f64 / 100.0;
        let order = serde_json::json!({
            "order_id": format!("ord-{n:06}"),
            "customer_id": format!("cus-{}", next() % 500),
            "amount": amount,
            "currency": if next().is_multiple_of(2) { "USD" } else { "EUR" },
            "status": STATUSES[(next() % STATUSES.len() as u64) as usize],
            "region": region,
            "items": [{"sku": format!("A-{}", next() % 50), "qty": 1 + next() % 4}],
            "created_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        });
        let subject = format!("orders.created.{region}");
        match js.publish(subject, order.to_string().into()).await {
            Ok(ack) => {
                if let Err(err) = ack.await {
                    tracing::warn!(error = %err, "sample order not stored");
                } else {
                    generated.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(err) => tracing::warn!(error = %err, "sample order not published"),
        }
        n += 1;
    }
}

/// Waits until the API answers (or its task failed).
async fn wait_for_api(
    api: &Client,
    task: &tokio::task::JoinHandle<Result<(), weir_control_plane::ServeError>>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if task.is_finished() {
            bail!(
                "the control plane stopped while starting (is its address already in use? see --addr)"
            );
        }
        match api.send(Method::GET, "/pipelines", None, None).await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() > deadline => {
                return Err(err.context("the control plane did not come up within 30 s"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The admin API key of the dev store: `WEIR_BOOTSTRAP_API_KEY`, else the one saved in
/// `<data dir>/dev-api-key`, else a new one (saved there, readable by the owner only).
fn dev_api_key(data_dir: &Path) -> Result<String> {
    if let Ok(key) = std::env::var("WEIR_BOOTSTRAP_API_KEY") {
        return Ok(key);
    }
    let path = data_dir.join("dev-api-key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        let key = key.trim().to_string();
        if !key.is_empty() {
            return Ok(key);
        }
    }
    let mut bytes = [0u8; 16];
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a new API key")?;
    let key = format!(
        "weir_dev_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    std::fs::write(&path, &key).with_context(|| format!("saving {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(key)
}

/// The `*.yaml` / `*.yml` files of `dir`, sorted.
fn example_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "cannot read the examples folder {} (see --examples)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.yaml files in {}", dir.display());
    }
    Ok(files)
}

/// The credentials of the control plane's user in the system tenant's account (created by
/// the deploys), read from `weir_accounts` with Weir's internal credentials.
async fn tenant_credentials(nats_url: &str, internal_creds: &str) -> Result<String> {
    let client = weir_connectors::connect_as(nats_url, "weir dev", Some(internal_creds)).await?;
    let kv = async_nats::jetstream::new(client)
        .get_key_value(weir_control_plane::nats::ACCOUNTS_BUCKET)
        .await
        .context("opening the NATS accounts bucket")?;
    let value = kv
        .get(weir_control_plane::tenants::SYSTEM_TENANT)
        .await
        .context("reading the dev tenant's NATS account")?
        .context("the dev tenant has no NATS account yet")?;
    let record: serde_json::Value = serde_json::from_slice(&value)?;
    Ok(record["credentials"]
        .as_str()
        .context("the dev tenant's NATS account has no credentials")?
        .to_string())
}

/// Starts nats-server with JetStream under `<data dir>/nats`, on 127.0.0.1:`port`, with its
/// monitoring endpoint on a free port; in operator mode (`keys`) trusting that operator, with
/// a full account resolver under `<data dir>/nats-jwt`. Its pid goes to `<data dir>/nats.pid`,
/// its log to `<data dir>/nats.log`.
fn start_nats(data_dir: &Path, port: u16, keys: Option<&OperatorKeys>) -> Result<RunningServer> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pipeline: &str, state: &str, error: Option<&str>) -> PipelineReport {
        PipelineReport {
            tenant: "default".into(),
            pipeline: pipeline.into(),
            version: 1,
            state: state.into(),
            counters: Default::default(),
            lag: 0,
            ack_pending: 0,
            last_error: error.map(|e| (e.to_string(), 1)),
            last_dead_letter: None,
        }
    }

    #[test]
    fn the_screen_has_one_line_per_pipeline_and_shows_each_error_once() {
        let mut screen = StatusScreen::default();
        let error = "source stream `NOPE` not found\ncaused by: 404";
        let reports = [
            report("order-processing", "running", None),
            report("broken", "failed", Some(error)),
        ];
        let first = screen.render(&reports, 10);
        let lines: Vec<&str> = first.lines().collect();
        assert_eq!(lines.len(), 4, "{first}");
        assert!(
            lines[1].trim_start().starts_with("order-processing"),
            "{first}"
        );
        assert!(lines[2].trim_start().starts_with("broken "), "{first}");
        assert_eq!(
            lines[3], "  ! broken: source stream `NOPE` not found",
            "the error's first line, once: {first}"
        );
        // The next tick: the same error is not printed again.
        let second = screen.render(&reports, 20);
        assert_eq!(second.lines().count(), 3, "{second}");
        assert!(!second.contains('!'), "{second}");
    }
}
