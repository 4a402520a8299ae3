//! Child processes of the tests (`weir run`, `weir worker`, `weir serve`): graceful stop, and
//! a `weir run` process that a test kills and starts again.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// A `weir run -f FILE --nats URL` process, its output appended to `log` across restarts.
pub struct RunProcess {
    pub file: PathBuf,
    pub url: String,
    pub log: PathBuf,
    /// Extra environment variables.
    pub env: Vec<(&'static str, &'static str)>,
    pub child: Option<Child>,
}

impl RunProcess {
    /// A process of `file` against `url`, not started yet.
    pub fn new(file: PathBuf, url: String, log: PathBuf) -> Self {
        RunProcess {
            file,
            url,
            log,
            env: Vec::new(),
            child: None,
        }
    }

    /// Starts it.
    pub fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "-f"])
            .arg(&self.file)
            .args(["--nats", &self.url])
            .env("RUST_LOG", "info")
            .envs(self.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting weir run")?;
        self.child = Some(child);
        Ok(())
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILLs it (nothing when it is not running).
    pub fn sigkill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERMs it and waits up to `within` for its exit.
    pub fn sigterm(&mut self, within: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("no worker running")?;
        match sigterm_and_wait(&mut child, within)? {
            Some(status) => Ok(status),
            None => bail!("weir run did not exit within {within:?} of SIGTERM"),
        }
    }

    /// What it printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RunProcess {
    fn drop(&mut self) {
        let _ = self.sigkill();
    }
}

/// Sends SIGTERM and waits up to `within` for the exit status; on timeout kills the process
/// and returns `None`.
pub fn sigterm_and_wait(child: &mut Child, within: Duration) -> Result<Option<ExitStatus>> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
