//! The `boxoffice` binary: parse flags, set up logging, run a subcommand.

use tracing_subscriber::EnvFilter;

use boxoffice::config::Command;

fn main() -> anyhow::Result<()> {
    let cli =
        boxoffice::config::parse_with_config(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match &cli.command {
        Some(Command::Serve(args)) => args.log_format == "json",
        _ => std::env::var("BOXOFFICE_LOG_FORMAT").is_ok_and(|f| f == "json"),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        // Spans carry the request id into every line of a request.
        logs.json().with_current_span(true).init();
    } else {
        logs.init();
    }
    match cli
        .command
        .unwrap_or_else(|| Command::Serve(Box::default()))
    {
        Command::Serve(args) => boxoffice::app::serve(*args),
        Command::Outbox(cmd) => boxoffice::cli::outbox(cmd),
        Command::Ticket(cmd) => boxoffice::cli::ticket(cmd),
        Command::Token(args) => boxoffice::cli::token(args),
        Command::Receipt(args) => boxoffice::cli::receipt(args),
        Command::Snapshot(cmd) => boxoffice::cli::snapshot(cmd),
        Command::Loadgen(args) => boxoffice::loadgen::run(*args),
        Command::Probe { server, path } => boxoffice::cli::probe(&server, &path),
        Command::Shards(cmd) => boxoffice::cli::shards(cmd),
    }
}
