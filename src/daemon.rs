//! The daemon: config → pipeline → sources → HTTP server, with owned,
//! cancellable tasks. (Being built: see issue "The daemon".)

use std::process::ExitCode;

use crate::cli::ServeArgs;

pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the daemon is not built yet; use the `classify` subcommand")
}
