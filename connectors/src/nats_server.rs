//! Launching a local `nats-server` child process with JetStream: finding the binary, writing
//! its configuration (optionally trusting a Weir operator, one NATS account per tenant),
//! starting it and waiting until it accepts clients, stopping it. The one launcher of
//! `weir dev`, `weir bench` and the test kit; it lives here, not in the test kit, so that the
//! product binary does not link test tooling.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::accounts::OperatorKeys;

/// Why a nats-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No binary at any of the places looked at.
    #[error(
        "no nats-server found (looked at $WEIR_NATS_SERVER, {looked}, and PATH): set \
         WEIR_NATS_SERVER, or run `bash deploy/setup.sh` to install it into .tools/bin/"
    )]
    NotFound {
        /// The candidate paths looked at, besides the variable and `PATH`.
        looked: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The process exited before it accepted clients.
    #[error("nats-server exited ({status}) during start-up; the end of its log {log}:\n{tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: String,
        /// The last lines of its log.
        tail: String,
    },
    /// It did not accept clients in time (it has been killed).
    #[error(
        "nats-server did not accept clients within {timeout:?}; the end of its log {log}:\n{tail}"
    )]
    NotReady {
        /// The time allowed.
        timeout: Duration,
        /// Its log file.
        log: String,
        /// The last lines of its log.
        tail: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

/// Finds the `nats-server` binary: `$WEIR_NATS_SERVER` (which must be a file), then each of
/// `candidates`, then `PATH`.
pub fn find_binary(candidates: &[PathBuf]) -> Result<PathBuf, LaunchError> {
    if let Some(path) = std::env::var_os("WEIR_NATS_SERVER") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(LaunchError::Io {
            what: format!("WEIR_NATS_SERVER={}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a file"),
        });
    }
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(LaunchError::NotFound {
        looked: candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Operator mode: the server trusts `keys`' operator, with a full account resolver.
pub struct OperatorMode<'a> {
    /// The operator's keys.
    pub keys: &'a OperatorKeys,
    /// Where the operator JWT is written.
    pub jwt_file: PathBuf,
    /// The resolver's directory (created).
    pub resolver_dir: PathBuf,
}

/// How to start a server. Its configuration file, log and ports directory go under `dir`.
pub struct LaunchSpec<'a> {
    /// The binary (see [`find_binary`]).
    pub binary: PathBuf,
    /// Where `nats.conf`, `nats.log` (appended to) and the ports file are kept.
    pub dir: PathBuf,
    /// The JetStream store directory (created).
    pub store_dir: PathBuf,
    /// The client port on 127.0.0.1; `None`: a free one, chosen by the server.
    pub port: Option<u16>,
    /// The HTTP monitoring port (`/varz`, `/jsz`), if any.
    pub monitor_port: Option<u16>,
    /// Largest message the server accepts, bytes (`None`: the server's 1 MiB).
    pub max_payload: Option<u32>,
    /// JetStream file storage the server may reserve for streams, bytes (`None`: what
    /// nats-server picks, 75% of the disk free at start). A stream's `max_bytes` is reserved
    /// out of it when the stream is created, before anything is written.
    pub max_file_store: Option<u64>,
    /// Where the server writes its pid, if anywhere.
    pub pid_file: Option<PathBuf>,
    /// Decentralised auth, if any.
    pub operator: Option<OperatorMode<'a>>,
    /// Extra lines appended to the configuration.
    pub extra_config: String,
    /// Run it in a process group of its own, so that Ctrl-C in a terminal reaches only the
    /// parent, which then stops it last.
    pub own_process_group: bool,
    /// How long the start may take.
    pub start_timeout: Duration,
}

impl LaunchSpec<'_> {
    /// A spec with a free port, no monitoring, no operator: files under `dir`, store in
    /// `dir/store`.
    pub fn new(binary: PathBuf, dir: &Path) -> Self {
        Self {
            binary,
            dir: dir.to_path_buf(),
            store_dir: dir.join("store"),
            port: None,
            monitor_port: None,
            max_payload: None,
            max_file_store: None,
            pid_file: None,
            operator: None,
            extra_config: String::new(),
            own_process_group: false,
            start_timeout: Duration::from_secs(20),
        }
    }

    /// The log file: `<dir>/nats.log`.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("nats.log")
    }

    /// The configuration text (writes the operator JWT in operator mode).
    fn config(&self) -> Result<String, LaunchError> {
        let mut text = String::new();
        if let Some(max) = self.max_payload {
            text.push_str(&format!("max_payload: {max}\n"));
        }
        let max_file_store = self
            .max_file_store
            .map(|max| format!("  max_file_store: {max}\n"))
            .unwrap_or_default();
        text.push_str(&format!(
            "jetstream {{\n  store_dir: \"{}\"\n{max_file_store}}}\n",
            self.store_dir.display()
        ));
        if let Some(pid) = &self.pid_file {
            text.push_str(&format!("pid_file: \"{}\"\n", pid.display()));
        }
        if let Some(op) = &self.operator {
            text.push_str(
                &op.keys
                    .server_config(&op.jwt_file, &op.resolver_dir)
                    .map_err(io("writing the NATS operator configuration"))?,
            );
        }
        text.push_str(&self.extra_config);
        text.push('\n');
        Ok(text)
    }

    /// Writes the configuration, starts the server and waits until it accepts clients.
    pub fn launch(&self) -> Result<RunningServer, LaunchError> {
        fs::create_dir_all(&self.store_dir)
            .map_err(io(format!("creating {}", self.store_dir.display())))?;
        let ports_dir = self.dir.join("nats-ports");
        let _ = fs::remove_dir_all(&ports_dir);
        fs::create_dir_all(&ports_dir).map_err(io(format!("creating {}", ports_dir.display())))?;
        let conf = self.dir.join("nats.conf");
        fs::write(&conf, self.config()?).map_err(io(format!("writing {}", conf.display())))?;
        let log_path = self.log_file();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("opening {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io(format!("opening {}", log_path.display())))?;
        let mut command = Command::new(&self.binary);
        if self.own_process_group {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let port = self.port.map_or("-1".to_string(), |p| p.to_string());
        command
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", &port, "--ports_file_dir"])
            .arg(&ports_dir);
        if let Some(monitor) = self.monitor_port {
            command.args(["-m", &monitor.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io(format!("starting {}", self.binary.display())))?;
        let mut server = RunningServer {
            child: Some(child),
            port: 0,
        };
        let started = Instant::now();
        loop {
            if let Some(port) = read_ports_file(&ports_dir)
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                server.port = port;
                return Ok(server);
            }
            let exited = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(LaunchError::Exited {
                    status,
                    log: log_path.display().to_string(),
                    tail: log_tail(&log_path),
                });
            }
            if started.elapsed() > self.start_timeout {
                server.kill();
                return Err(LaunchError::NotReady {
                    timeout: self.start_timeout,
                    log: log_path.display().to_string(),
                    tail: log_tail(&log_path),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A started nats-server. Dropping it does not stop it: call [`stop`](Self::stop) or
/// [`kill`](Self::kill).
pub struct RunningServer {
    child: Option<Child>,
    port: u16,
}

impl RunningServer {
    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops gracefully: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the process at once (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last 20 lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Reads the client port from the `<name>_<pid>.ports` file nats-server writes once it listens.
fn read_ports_file(dir: &Path) -> Option<u16> {
    let entry = fs::read_dir(dir).ok()?.flatten().next()?;
    let text = fs::read_to_string(entry.path()).ok()?;
    let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = ports.get("nats")?.get(0)?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}
