//! The control plane of `weir dev`: served in-process on SQLite under the data dir, with the
//! dev admin API key; the example files applied and their pipelines deployed through the API,
//! as a user would (quotas and audit apply).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use reqwest::Method;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_control_plane::{SecretKeySource, ServeConfig, ServeError};

use super::super::apply;
use super::super::client::Client;
use super::{Args, keys_dir};

/// Serves the API until `stop` and waits until it answers. `operator_mode`: the embedded
/// NATS has one account per tenant (its keys under the data dir).
pub(super) async fn start(
    args: &Args,
    nats_url: &str,
    operator_mode: bool,
    api_key: &str,
    api: &Client,
    stop: CancellationToken,
) -> Result<JoinHandle<Result<(), ServeError>>> {
    let config = ServeConfig {
        addr: args.addr,
        data_dir: args.data_dir.clone(),
        database_url: None,
        secret_key: SecretKeySource::DataDir,
        bootstrap_api_key: Some(api_key.to_string()),
        body_limit: 1024 * 1024,
        nats_url: Some(nats_url.to_string()),
        // The embedded NATS runs in operator mode: one account per tenant. On a server without
        // accounts (`--plain-nats`, `--nats`) tenants share it: allowed here, with a warning.
        nats_keys: operator_mode.then(|| keys_dir(&args.data_dir)),
        allow_shared_nats: true,
        nats_revoke_after: weir_control_plane::nats::DEFAULT_REVOKE_AFTER,
    };
    let control_plane = tokio::spawn(weir_control_plane::server::serve_until(
        config,
        stop.cancelled_owned(),
    ));
    wait_for_api(api, &control_plane).await?;
    Ok(control_plane)
}

/// Applies the example files of `dir` through the API and deploys their pipelines. With
/// `create_streams` (a server without accounts) their streams are created in NATS first; in
/// operator mode the deploys create them in the tenant's account.
pub(super) async fn apply_examples(
    api: &Client,
    dir: &Path,
    nats_url: &str,
    create_streams: bool,
) -> Result<()> {
    let files = example_files(dir)?;
    let resources = apply::load(&files)?;
    if create_streams {
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
    register_schemas(api, &dir.join("schemas")).await?;
    let outcomes = apply::send_all(api, &resources, false).await?;
    for o in &outcomes {
        println!("[weir dev] {}/{} {}", o.kind, o.name, o.result);
    }

    // Deploy through the API, as a user would: quotas and audit apply.
    for resource in &resources {
        let weir_pipelines::Resource::Pipeline(pipeline) = resource else {
            continue;
        };
        let name = &pipeline.metadata.name;
        let info: weir_control_plane::api::DeploymentInfo = api
            .post(
                &format!("/pipelines/{name}/deploy"),
                &weir_control_plane::api::DeployRequest::default(),
            )
            .await
            .with_context(|| format!("deploying {name}"))?;
        println!(
            "[weir dev] deployed pipeline/{name} (version {}, parallelism {})",
            info.version, info.parallelism
        );
    }
    Ok(())
}

/// Registers each `<subject>.schema.json` of `dir` (when it exists) as a JSON Schema of the
/// dev tenant's registry, so that pipelines can `validate` against it.
async fn register_schemas(api: &Client, dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for file in files {
        let Some(subject) = file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".schema.json"))
        else {
            continue;
        };
        let text =
            std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
        let body = serde_json::json!({"schema": text, "schema_type": "JSON"});
        let reply = api
            .send(
                Method::POST,
                &format!("/schemas/{subject}/versions"),
                Some(("application/json", body.to_string())),
                None,
            )
            .await
            .with_context(|| format!("registering schema {subject}"))?;
        let v: serde_json::Value = serde_json::from_str(&reply.text).unwrap_or_default();
        println!(
            "[weir dev] schema/{subject} version {} (id {})",
            v["version"], v["id"]
        );
    }
    Ok(())
}

/// Waits until the API answers (or its task failed).
async fn wait_for_api(api: &Client, task: &JoinHandle<Result<(), ServeError>>) -> Result<()> {
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
pub(super) fn dev_api_key(data_dir: &Path) -> Result<String> {
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
