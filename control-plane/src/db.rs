//! The database: PostgreSQL or SQLite behind one diesel connection type, a pool, and embedded migrations.
//!
//! The backend is chosen from the URL scheme, never by trial: diesel's derived `establish` tries each backend in
//! turn, and SQLite accepts any string as a file name, so a mistyped PostgreSQL URL would silently become a SQLite
//! file. Diesel is synchronous; async callers go through [`Database::run`], which moves the work to the blocking
//! pool so that the actix workers never wait on the database.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::Error;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// One connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

impl AnyConnection {
    /// A transaction for work that writes; every write of the control plane goes through one.
    ///
    /// On SQLite it begins `IMMEDIATE`, taking the write lock at the start: a deferred transaction that reads and
    /// then writes fails at once ("database is locked", no busy wait) when another connection wrote after its
    /// read began, which concurrent API writes (Terraform applies ten at a time) hit at once. Begun immediate,
    /// writers wait their turn within `busy_timeout`. On PostgreSQL, and inside a transaction already open (a
    /// savepoint then), it is an ordinary transaction.
    pub fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        let AnyConnection::Sqlite(sqlite) = self else {
            return self.transaction(f);
        };
        match AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE") {
            Ok(()) => {}
            Err(diesel::result::Error::AlreadyInTransaction) => return self.transaction(f),
            Err(e) => return Err(e.into()),
        }
        // Begun on the SQLite connection, whose transaction state AnyConnection's manager shares: nested
        // `transaction` calls inside `f` become savepoints, and commit and rollback below end this one.
        match f(self) {
            Ok(value) => {
                <AnyConnection as TransactionManager<AnyConnection>>::commit_transaction(self)?;
                Ok(value)
            }
            Err(e) => {
                <AnyConnection as TransactionManager<AnyConnection>>::rollback_transaction(self)?;
                Err(e)
            }
        }
    }
}

/// Which backend a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    /// A file path; `:memory:` is refused because every pooled connection would see a different database.
    Sqlite(String),
}

impl DatabaseUrl {
    /// `postgres://` and `postgresql://` name PostgreSQL; `sqlite://PATH` and `sqlite:PATH` name a SQLite file.
    /// Anything else is an error, so that a typo never silently creates a SQLite file.
    pub fn parse(url: &str) -> Result<Self, Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        match path {
            Some(p) if !p.is_empty() && p != ":memory:" => Ok(Self::Sqlite(p.to_owned())),
            _ => Err(Error::Config(format!(
                "database URL must start with postgres://, postgresql:// or sqlite:// followed by a file path (got {:?})",
                redact_url(url)
            ))),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgresql",
            Self::Sqlite(_) => "sqlite",
        }
    }

    fn establish(&self) -> Result<AnyConnection, diesel::ConnectionError> {
        match self {
            Self::Postgres(url) => PgConnection::establish(url).map(AnyConnection::Postgresql),
            Self::Sqlite(path) => open_sqlite(path).map(AnyConnection::Sqlite),
        }
    }

    /// What must happen once, on one connection, before a pool opens its connections in parallel.
    ///
    /// SQLite: switches the file to WAL. The mode persists in the file, and switching a new file takes the write
    /// lock from inside a read transaction; two connections doing that at once make SQLite refuse one of them
    /// at once, without waiting out busy_timeout (a read transaction's upgrade could deadlock). When every pooled
    /// connection switched for itself, a pool opening four connections on a fresh file logged "database is
    /// locked" on most first starts. On a file already in WAL this only reads its header.
    fn prepare(&self) -> Result<(), diesel::ConnectionError> {
        match self {
            Self::Postgres(_) => Ok(()),
            Self::Sqlite(path) => open_sqlite(path)?
                .batch_execute("PRAGMA journal_mode=WAL;")
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration),
        }
    }
}

/// A SQLite connection as every user of the file needs it.
fn open_sqlite(path: &str) -> Result<SqliteConnection, diesel::ConnectionError> {
    let mut conn = SqliteConnection::establish(path)?;
    // busy_timeout first, so that every later statement waits for another writer's lock instead of failing at
    // once. No journal_mode here: it is stored in the file, and `DatabaseUrl::prepare` sets it once.
    conn.batch_execute("PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;")
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// A URL with any password replaced, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The r2d2 manager: opens connections with [`DatabaseUrl::establish`] (never diesel's trial-and-error one).
struct AnyConnectionManager(DatabaseUrl);

impl r2d2::ManageConnection for AnyConnectionManager {
    type Connection = AnyConnection;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        self.0.establish()
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map(|_| ())
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

/// A pooled database handle. Cloning shares the pool.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<AnyConnectionManager>,
    backend: &'static str,
    /// For [`Database::dedicated_connection`].
    url: DatabaseUrl,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Database {
    /// Opens a pool (8 connections for PostgreSQL, 4 for SQLite, which serialises writes anyway).
    pub fn connect(url: &str) -> Result<Self, Error> {
        let url = DatabaseUrl::parse(url)?;
        let backend = url.backend_name();
        let size = if backend == "postgresql" { 8 } else { 4 };
        url.prepare()
            .map_err(|e| Error::Config(format!("cannot open the {backend} database: {e}")))?;
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .connection_timeout(Duration::from_secs(10))
            .build(AnyConnectionManager(url.clone()))
            .map_err(|e| Error::Config(format!("cannot open the {backend} database: {e}")))?;
        Ok(Self { pool, backend, url })
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// A connection of its own, outside the pool and opened as the pool opens its own, for a long-lived user that
    /// keeps state on it (the standalone log writer's prepared statements) and must not hold one of the pool's few
    /// connections for the life of the process.
    pub fn dedicated_connection(&self) -> Result<AnyConnection, Error> {
        self.url
            .establish()
            .map_err(|e| Error::Unavailable(format!("database connection: {e}")))
    }

    /// Applies every pending migration of this backend; returns how many ran.
    pub fn migrate(&self) -> Result<usize, Error> {
        self.with_conn(|conn| {
            let applied = match conn {
                AnyConnection::Postgresql(c) => c
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|v| v.len()),
                AnyConnection::Sqlite(c) => {
                    c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len())
                }
            };
            applied.map_err(|e| Error::Config(format!("database migration failed: {e}")))
        })
    }

    /// Runs `f` with a pooled connection on the calling thread. For CLI commands and code already off the
    /// async workers.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| Error::Unavailable(format!("database pool: {e}")))?;
        f(&mut conn)
    }

    /// Runs `f` with a pooled connection on tokio's blocking pool, so async callers never block a worker.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, Error> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with_conn(f))
            .await
            .map_err(|e| Error::Internal(format!("database task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_comes_from_the_scheme_and_anything_else_is_refused() {
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:data/x.db").unwrap(),
            DatabaseUrl::Sqlite("data/x.db".into())
        );
        for bad in [
            "host=127.0.0.1 user=x",
            "/tmp/x.db",
            "mysql://h/db",
            "sqlite://",
            "sqlite::memory:",
            "",
        ] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    /// The journal mode is set once before the pool opens; every pooled connection must still run in WAL.
    #[test]
    fn every_pooled_sqlite_connection_of_a_fresh_file_is_in_wal_mode() {
        #[derive(diesel::QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let db =
            Database::connect(&format!("sqlite://{}", dir.path().join("x.db").display())).unwrap();
        let held: Vec<_> = (0..4).map(|_| db.pool.get().unwrap()).collect();
        for mut conn in held {
            let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
                .get_result(&mut *conn)
                .unwrap();
            assert_eq!(mode.journal_mode, "wal");
        }
    }

    #[test]
    fn passwords_never_reach_error_messages() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        let err = DatabaseUrl::parse("mysql://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
