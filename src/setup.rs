//! Resolving the deployment's shared secrets and storage from the settings.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use gatehouse_control_plane::db::Database;
use gatehouse_shared::crypto::MasterKey;

use crate::cli::GlobalOptions;

/// Name of the SQLite file in the data dir.
pub const SQLITE_FILE: &str = "gatehouse.sqlite";
/// Name of the generated master key file in the data dir.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Whether a missing master key may be generated (standalone) or must be supplied (split deployments, where every
/// process has to share one key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPolicy {
    CreateInDataDir,
    MustExist,
}

pub fn ensure_data_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))
}

/// The master key, from `GATEHOUSE_MASTER_KEY`, `--master-key-file`, or `master.key` in the data dir.
pub fn master_key(opts: &GlobalOptions, policy: KeyPolicy) -> Result<MasterKey> {
    if let Some(text) = &opts.master_key {
        return MasterKey::from_base64(text).context("GATEHOUSE_MASTER_KEY");
    }
    let (path, explicit): (PathBuf, bool) = match &opts.master_key_file {
        Some(p) => (p.clone(), true),
        None => (opts.data_dir.join(MASTER_KEY_FILE), false),
    };
    match fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_base64(&text)
            .with_context(|| format!("master key file {}", path.display())),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !explicit
                && policy == KeyPolicy::CreateInDataDir =>
        {
            ensure_data_dir(&opts.data_dir)?;
            let text = MasterKey::generate_base64();
            write_private_file(&path, &text)?;
            tracing::info!(path = %path.display(), "created a new master key");
            MasterKey::from_base64(&text).context("generated master key")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no master key: set GATEHOUSE_MASTER_KEY or --master-key-file (32 bytes, base64; \
             `head -c32 /dev/urandom | base64` makes one) — every process of a deployment needs the same key"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read master key file {}", path.display())),
    }
}

/// Writes a file readable by its owner only.
fn write_private_file(path: &Path, contents: &str) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}

/// The database URL: `--database-url`, else SQLite in the data dir.
pub fn database_url(opts: &GlobalOptions) -> Result<String> {
    match &opts.database_url {
        Some(url) => Ok(url.clone()),
        None => {
            ensure_data_dir(&opts.data_dir)?;
            Ok(format!(
                "sqlite://{}",
                opts.data_dir.join(SQLITE_FILE).display()
            ))
        }
    }
}

/// Opens the database and applies pending migrations.
pub fn open_database(opts: &GlobalOptions) -> Result<Database> {
    let url = database_url(opts)?;
    let db = Database::connect(&url)?;
    let applied = db.migrate()?;
    if applied > 0 {
        tracing::info!(
            backend = db.backend(),
            applied,
            "applied database migrations"
        );
    }
    Ok(db)
}
