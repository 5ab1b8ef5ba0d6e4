//! Thin entry point: parse the command line, run, map errors to an exit code
//! (0 ok, 1 runtime failure, 2 usage or configuration error; see `app::exit`).
//! Errors print with Display (`{:#}` shows the anyhow context chain), never Debug.

use std::process::ExitCode;

use clap::Parser;

use aws_transfer_exporter::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Classify(args)) => aws_transfer_exporter::report::run(&args),
        Some(Command::Serve(args)) => return aws_transfer_exporter::app::main(args),
        None => return aws_transfer_exporter::app::main(cli.serve),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("aws-transfer-exporter: error: {err:#}");
            ExitCode::from(aws_transfer_exporter::app::exit::RUNTIME)
        }
    }
}
