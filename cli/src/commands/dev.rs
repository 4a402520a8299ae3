//! `weir dev`: the whole system on one machine. Starts a local nats-server child process
//! (JetStream store under `<data dir>/nats`) unless `--nats` is given, the control plane
//! in-process on SQLite under the data dir, one in-process fleet worker; applies the example
//! pipeline files through the API, deploys their pipelines, and runs a small generator of
//! sample orders. Prints where the API listens and a status line every few seconds; Ctrl-C
//! (or SIGTERM) stops everything cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use reqwest::Method;
use tokio_util::sync::CancellationToken;
use weir_connectors::fleet::now_ms;
use weir_control_plane::{SecretKeySource, ServeConfig};
use weir_runtime::fleet::status::StatusTable;

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
        let (nats_url, nats_child) = match &args.nats {
            Some(url) => (url.clone(), None),
            None => {
                let (url, child) = start_nats(&args.data_dir, args.nats_port).await?;
                (url, Some(child))
            }
        };
        let result = run_dev(&args, &nats_url, stop.clone()).await;
        stop.cancel();
        if let Some(child) = nats_child {
            stop_child(child);
        }
        result.map(|()| 0)
    })
}

async fn run_dev(args: &Args, nats_url: &str, stop: CancellationToken) -> Result<()> {
    let api_key = dev_api_key(&args.data_dir)?;
    let config = ServeConfig {
        addr: args.addr,
        data_dir: args.data_dir.clone(),
        database_url: None,
        secret_key: SecretKeySource::DataDir,
        bootstrap_api_key: Some(api_key.clone()),
        body_limit: 1024 * 1024,
        nats_url: Some(nats_url.to_string()),
        // One machine, one developer: the embedded NATS has no accounts (yet), so tenants
        // share it; `weir serve --nats-keys` isolates them.
        nats_keys: None,
        allow_shared_nats: true,
    };
    let control_plane = tokio::spawn(weir_control_plane::server::serve_until(
        config,
        stop.clone().cancelled_owned(),
    ));
    let base = format!("http://{}", args.addr);
    let api = Client::new(&base, &api_key);
    wait_for_api(&api, &control_plane).await?;

    let client = weir_connectors::connect(nats_url, "weir dev")
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    let js = async_nats::jetstream::new(client.clone());

    // Apply the examples through the API; create their streams in NATS.
    let files = example_files(&args.examples)?;
    let resources = apply::load(&files)?;
    for resource in &resources {
        if let weir_pipelines::Resource::Stream(stream) = resource {
            weir_connectors::ensure_stream(&js, stream)
                .await
                .with_context(|| format!("creating stream {}", stream.metadata.name))?;
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

    // One in-process fleet worker.
    let worker_client = weir_connectors::connect(nats_url, "weir dev worker").await?;
    let metrics = Arc::new(weir_runtime::Metrics::new());
    let fleet = weir_runtime::FleetWorker::new(
        worker_client,
        weir_runtime::FleetConfig::new(format!("dev-{}", std::process::id()))?,
        metrics,
    );
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
    println!("[weir dev] NATS: {nats_url}");
    println!(
        "[weir dev] sample orders: {} per second on orders.created.<region>; Ctrl-C stops",
        args.rate
    );

    let mut ticker = tokio::time::interval(STATUS_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => println!("{}", status_line(&status, generated.load(Ordering::Relaxed))),
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

/// `[weir dev] orders 120 | order-processing running v1 in 120 out 97 dlq 0 lag 0 | …`
fn status_line(status: &StatusTable, generated: u64) -> String {
    let mut line = format!("[weir dev] orders {generated}");
    for p in status.reports() {
        let c = &p.counters;
        line.push_str(&format!(
            " | {} {} v{} in {} out {} filtered {} dlq {} lag {}",
            p.pipeline,
            p.state,
            p.version,
            c.messages_in,
            c.messages_out,
            c.filtered,
            c.dead_lettered,
            p.lag
        ));
        if p.state == "failed"
            && let Some((error, _)) = &p.last_error
        {
            line.push_str(&format!(" ({error})"));
        }
    }
    line
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
        // A key saved by an older `weir dev` that is weaker than the rules is replaced.
        if weir_control_plane::tenants::check_bootstrap_key(&key).is_ok() {
            return Ok(key);
        }
    }
    let key = weir_control_plane::auth::random_token("weir_");
    // Created readable by the owner only, never briefly world-readable.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        // An older file keeps its mode on truncation: tighten it too.
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    use std::io::Write as _;
    options
        .open(&path)
        .and_then(|mut f| f.write_all(key.as_bytes()))
        .with_context(|| format!("saving {}", path.display()))?;
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

/// The nats-server binary: `$WEIR_NATS_SERVER`, `./.tools/bin/nats-server`, or on `PATH`.
fn nats_server_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("WEIR_NATS_SERVER") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("WEIR_NATS_SERVER={} is not a file", path.display());
    }
    let local = PathBuf::from(".tools/bin/nats-server");
    if local.is_file() {
        return Ok(local);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "no nats-server found: set WEIR_NATS_SERVER, put it in ./.tools/bin/, add it to PATH, \
         or give --nats URL of a running server"
    )
}

/// Starts nats-server with JetStream under `<data dir>/nats`, on 127.0.0.1:`port`.
async fn start_nats(data_dir: &Path, port: u16) -> Result<(String, Child)> {
    let binary = nats_server_binary()?;
    let store = data_dir.join("nats");
    std::fs::create_dir_all(&store)?;
    let log_path = data_dir.join("nats.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut command = Command::new(&binary);
    // Its own process group: Ctrl-C in the terminal reaches `weir dev` only, which stops the
    // worker first and the server last.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!(
                "nats-server exited ({status}) while starting (port {port} in use? see --nats-port):\n{log}"
            );
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            println!(
                "[weir dev] nats-server {} on {url}, store {}",
                binary.display(),
                store.display()
            );
            return Ok((url, child));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "nats-server did not listen on port {port} within 15 s; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, then SIGKILL after 10 s.
fn stop_child(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
