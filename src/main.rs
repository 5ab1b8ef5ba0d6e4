//! Thin entry point: parse the command line, run, map errors to an exit code.
//! Errors print with Display (`{:#}` shows the anyhow context chain), never Debug.

use std::process::ExitCode;

use clap::Parser;

use aws_transfer_exporter::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Classify(args)) => aws_transfer_exporter::report::run(&args),
        Some(Command::Serve(args)) => aws_transfer_exporter::daemon::run(args),
        None => aws_transfer_exporter::daemon::run(cli.serve),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("aws-transfer-exporter: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
