//! The `gatehouse` binary's library: settings, start-up and the CLI commands. `main.rs` only parses and dispatches.

pub mod bus;
pub mod cli;
pub mod run;
pub mod setup;
pub mod signals;
pub mod telemetry;
pub mod tokens;

use anyhow::Result;
use cli::{Cli, Command};

/// Runs one parsed command line.
pub fn execute(cli: Cli) -> Result<()> {
    let opts = cli.global;
    match cli.command.unwrap_or(Command::Standalone) {
        Command::Standalone => run::standalone(&opts),
        Command::ControlPlane => run::control_plane(&opts),
        Command::DataPlane => run::data_plane(&opts),
        Command::Migrate => {
            let db = setup::open_database(&opts)?;
            println!("database ({}) is up to date", db.backend());
            Ok(())
        }
        Command::Openapi => {
            println!(
                "{}",
                gatehouse_control_plane::api::openapi_document().to_pretty_json()?
            );
            Ok(())
        }
        Command::Token { command } => tokens::run(&opts, command),
    }
}
