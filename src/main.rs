use std::process::ExitCode;

use clap::Parser as _;
use gatehouse::cli::Cli;

/// The proxy allocates and frees small buffers per request on many threads; glibc's malloc spent ~13% of the
/// process's CPU doing so under load (README, "Performance"), mimalloc's thread-local free lists far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry =
        match gatehouse::telemetry::init(&cli.global.log, cli.global.otlp_endpoint.as_deref()) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
        };
    let result = gatehouse::execute(cli);
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
