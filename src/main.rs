//! The `boxoffice` binary: parse flags, set up logging, run a subcommand.

use tracing_subscriber::EnvFilter;

use boxoffice::config::Command;

fn main() -> anyhow::Result<()> {
    let cli =
        boxoffice::config::parse_with_config(std::env::args_os()).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli
        .command
        .unwrap_or_else(|| Command::Serve(Box::default()))
    {
        Command::Serve(args) => boxoffice::app::serve(*args),
        Command::Outbox(cmd) => boxoffice::cli::outbox(cmd),
        Command::Ticket(cmd) => boxoffice::cli::ticket(cmd),
        Command::Snapshot(cmd) => boxoffice::cli::snapshot(cmd),
        Command::Loadgen(args) => boxoffice::loadgen::run(args),
        Command::Probe { server, path } => boxoffice::cli::probe(&server, &path),
    }
}
