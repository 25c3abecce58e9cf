//! `gatehouse token …` and the admin token printed on the first standalone start.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use gatehouse_control_plane::db::Database;
use gatehouse_control_plane::keyring::{Keyring, TokenRequest};
use gatehouse_control_plane::store::tokens as token_store;
use gatehouse_shared::token::{ALL_ACCOUNTS, Scope};

use crate::cli::{GlobalOptions, TokenCommand};
use crate::setup::{self, KeyPolicy};

pub fn run(opts: &GlobalOptions, command: TokenCommand) -> Result<()> {
    // The CLI may create the key and database on a fresh standalone data dir, exactly as the server would.
    let policy = if opts.database_url.is_some() {
        KeyPolicy::MustExist
    } else {
        KeyPolicy::CreateInDataDir
    };
    let db = setup::open_database(opts)?;
    match command {
        TokenCommand::Create {
            accounts,
            scopes,
            ttl,
            description,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s).with_context(|| format!("unknown scope {s:?}; use ai-gateway:read, ai-gateway:edit, ai-gateway:run or admin")))
                .collect::<Result<Vec<_>>>()?;
            let keyring = Keyring::load_or_create(&db, &setup::master_key(opts, policy)?)?;
            let minted = keyring.mint(
                &db,
                TokenRequest {
                    accounts,
                    scopes,
                    ttl,
                    description,
                },
            )?;
            println!("{}", minted.token);
        }
        TokenCommand::List => {
            let tokens = db.with_conn(token_store::list_tokens)?;
            println!(
                "{:<38} {:<10} {:<24} {:<24} {:<50} ACCOUNTS",
                "ID", "STATUS", "CREATED", "EXPIRES", "SCOPES"
            );
            let now = chrono::Utc::now().timestamp_millis();
            for t in tokens {
                let status = match (t.revoked_at_ms, t.expires_at_ms) {
                    (Some(_), _) => "revoked",
                    (None, Some(exp)) if exp <= now => "expired",
                    _ => "active",
                };
                let scopes: Vec<_> = t.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{:<38} {:<10} {:<24} {:<24} {:<50} {}",
                    t.id,
                    status,
                    time(t.created_at_ms),
                    t.expires_at_ms.map(time).unwrap_or_else(|| "never".into()),
                    scopes.join(","),
                    t.accounts.join(",")
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let now = chrono::Utc::now().timestamp_millis();
            if !db.with_conn(|c| token_store::revoke_token(c, &id, now))? {
                bail!("no token with id {id}");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// On the first start (no token recorded yet), mints an all-powerful token and prints it once, with a curl line.
pub fn print_first_admin_token(
    db: &Database,
    keyring: &Keyring,
    api_addr: SocketAddr,
) -> Result<()> {
    if !db.with_conn(token_store::list_tokens)?.is_empty() {
        return Ok(());
    }
    let minted = keyring.mint(
        db,
        TokenRequest {
            accounts: vec![ALL_ACCOUNTS.to_owned()],
            scopes: Scope::ALL.to_vec(),
            ttl: None,
            description: "admin token created on first start".into(),
        },
    )?;
    println!(
        "\nFirst start: created an admin token. It is shown only this once; store it now.\n\n  {token}\n\n\
         Try it:\n  export GATEHOUSE_TOKEN={token}\n  curl -s -H \"Authorization: Bearer $GATEHOUSE_TOKEN\" \
         http://{api_addr}/client/v4/accounts/my-account/ai-gateway/gateways\n",
        token = minted.token
    );
    Ok(())
}
