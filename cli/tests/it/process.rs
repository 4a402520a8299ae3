//! Child processes of the tests (`weir run`, `weir worker`, `weir serve`): graceful stop.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Result;

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
