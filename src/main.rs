use std::process::ExitCode;

use clap::Parser as _;
use gatehouse::cli::Cli;

/// The proxy allocates and frees small buffers per request on many threads; glibc's malloc spent ~13% of the
/// process's CPU doing so under load (README, "Performance"), mimalloc's thread-local free lists far less. It is
/// built with `no_thp` (workspace Cargo.toml): with transparent huge pages on its arenas, the large, mostly untouched
/// buffers of each connection became resident 2 MiB at a time and the gateway's memory doubled at 2,000 streams.
/// On a host whose THP setting is `always` (not `madvise`) the kernel may still use huge pages;
/// `MIMALLOC_ALLOW_THP=0` in the environment turns them off for the process there.
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
