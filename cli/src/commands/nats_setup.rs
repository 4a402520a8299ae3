//! `weir nats-setup`: what a NATS deployment needs for operator mode (one NATS account per
//! tenant), made once: the operator's and Weir's account seeds (for `weir serve --nats-keys`),
//! the nats-server configuration lines that trust them, and the credentials of Weir's internal
//! account for `weir worker --nats-creds`. Existing seeds are reused, never replaced.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use weir_connectors::accounts::OperatorKeys;

/// Arguments of `weir nats-setup`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory for the seeds (`operator.nk`, `system.nk`, `weir.nk`), `operator.jwt`,
    /// `accounts.conf` and `worker.creds`; keep it secret.
    #[arg(long, default_value = ".weir/nats-keys", env = "WEIR_NATS_KEYS")]
    pub keys: PathBuf,
    /// Where nats-server keeps the account JWTs it is sent (its full resolver's directory),
    /// as written into `accounts.conf`; also where `operator.jwt` is expected on the server.
    #[arg(long, default_value = "/var/lib/nats/jwt")]
    pub resolver_dir: PathBuf,
    /// Where `accounts.conf` says the operator JWT lies on the server (default: in `--keys`).
    #[arg(long)]
    pub operator_jwt: Option<PathBuf>,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let keys = OperatorKeys::load_or_generate(&args.keys)?;
    let local_jwt = args.keys.join("operator.jwt");
    std::fs::write(&local_jwt, keys.operator_jwt())
        .with_context(|| format!("writing {}", local_jwt.display()))?;
    let on_server = match &args.operator_jwt {
        Some(path) => path.clone(),
        None => std::path::absolute(&local_jwt)
            .with_context(|| format!("resolving {}", local_jwt.display()))?,
    };
    let conf = keys.server_config_lines(&on_server, &args.resolver_dir);
    let conf_path = std::path::absolute(args.keys.join("accounts.conf"))?;
    std::fs::write(&conf_path, &conf)
        .with_context(|| format!("writing {}", conf_path.display()))?;
    let creds_path = args.keys.join("worker.creds");
    std::fs::write(&creds_path, keys.internal_creds())
        .with_context(|| format!("writing {}", creds_path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&creds_path, std::fs::Permissions::from_mode(0o600));
    }
    let dir = args.keys.display();
    println!(
        "NATS operator {} (seeds in {dir}; keep them secret)\n\
         \n\
         1. nats-server: copy {} next to its configuration file and add\n   \
            `include \"accounts.conf\"` to it (an include path is relative to the file), on\n   \
            every server of the cluster, with the operator JWT at {} and the resolver\n   \
            directory {} on each; keep `jetstream {{ store_dir: … }}`; restart it once.\n\
         2. weir serve --nats nats://… --nats-keys {dir}\n\
         3. weir worker --nats nats://… --nats-creds {}",
        keys.operator_public_key(),
        conf_path.display(),
        on_server.display(),
        args.resolver_dir.display(),
        creds_path.display(),
    );
    Ok(0)
}
