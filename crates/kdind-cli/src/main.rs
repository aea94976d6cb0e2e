//! The `kdind` command: flags become options for one library call, and errors and progress are
//! shown here and nowhere else.

mod commands;
mod status;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{ArgAction, Parser};

/// Real multi-node Kubernetes clusters in Docker containers, built offline from source.
#[derive(Debug, Parser)]
#[command(name = "kdind", version, propagate_version = true)]
pub struct Cli {
    /// More diagnostics on stderr: -v steps and decisions, -vv commands run and generated
    /// configs, -vvv everything those commands print.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,

    /// Print nothing but results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    #[command(subcommand)]
    command: commands::Command,
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error,kube_client=off",
        // kube-rs reports every refused connection while the API server starts; the waits
        // that retry them say what matters.
        (false, 0) => "warn,kube_client=off",
        (false, 1) => "kdind=info,warn,kube_client=off",
        (false, 2) => "kdind=debug,info",
        (false, _) => "trace,hyper=info,h2=info,tower=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KDIND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    let status = status::Status::new(cli.quiet);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kdind: error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.command.run(&status)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            status.clear();
            eprintln!("kdind: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
