//! A private PostgreSQL for tests and the archive bench: [`PostgresServer::start`]
//! runs `initdb` and `pg_ctl` on a free loopback port in a fresh temporary
//! directory (its own socket directory too), and stops it and removes the
//! directory when dropped. [`PostgresServer::open`] keeps its cluster in a
//! given directory instead, made on first use and started again as it is
//! later (a bench's fill survives the run); dropping it only stops it.
//! The machine's own PostgreSQL (5432) is never used.
//!
//! PostgreSQL refuses to run as root: as root, the server runs as Debian's
//! `postgres` user (`runuser -u postgres --`), which owns the directory;
//! otherwise as the current user. Binaries come from `$PG_BIN`, the newest
//! `/usr/lib/postgresql/*/bin`, or `PATH`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::{find_program, free_port};

/// How long a fresh or restarted server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PostgresServerError {
    #[error("initdb not found (looked in $PG_BIN, /usr/lib/postgresql/*/bin and PATH): install PostgreSQL (apt-get install postgresql)")]
    NotFound,
    #[error("running as root, but there is no `postgres` user to run PostgreSQL as (apt-get install postgresql creates it)")]
    NoPostgresUser,
    #[error("cannot run {0}: {1}")]
    Spawn(&'static str, std::io::Error),
    #[error("{program} failed: {stderr}")]
    Failed {
        program: &'static str,
        stderr: String,
    },
    #[error("PostgreSQL on port {port} did not accept connections within {START_TIMEOUT:?}; its log: {log}")]
    NotReady { port: u16, log: String },
}

/// A private PostgreSQL cluster, stopped on drop (and removed, unless it
/// was [opened](PostgresServer::open) in a directory of the caller's).
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the server's programs as `postgres` (we are root).
    as_postgres: bool,
    /// Leave the directory on drop.
    persistent: bool,
}

impl PostgresServer {
    /// Creates a cluster (user `postgres`, trust auth on loopback) in a
    /// fresh temporary directory and starts it.
    pub async fn start() -> Result<PostgresServer, PostgresServerError> {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("flowtape-pg-{}-{nonce:x}", std::process::id()));
        Self::start_in(dir, false).await
    }

    /// Starts the cluster kept in `dir`, creating it there first if `dir`
    /// holds none; on a free port, like [`start`](Self::start). The
    /// directory stays when the server is dropped (stopped cleanly).
    pub async fn open(dir: impl Into<PathBuf>) -> Result<PostgresServer, PostgresServerError> {
        Self::start_in(dir.into(), true).await
    }

    async fn start_in(
        dir: PathBuf,
        persistent: bool,
    ) -> Result<PostgresServer, PostgresServerError> {
        let bin = bin_dir().ok_or(PostgresServerError::NotFound)?;
        let as_postgres = running_as_root();
        if as_postgres && !user_exists("postgres") {
            return Err(PostgresServerError::NoPostgresUser);
        }
        let port = free_port().map_err(|e| PostgresServerError::Spawn("bind", e))?;
        std::fs::create_dir_all(dir.join("sock"))
            .map_err(|e| PostgresServerError::Spawn("mkdir", e))?;
        let server = PostgresServer {
            bin,
            dir,
            port,
            as_postgres,
            persistent,
        };
        if server.data_dir().join("PG_VERSION").is_file() {
            server.resume().await?;
            return Ok(server);
        }
        if as_postgres {
            server.run(
                "chown",
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:")
                    .arg(&server.dir),
            )?;
        }
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(server.data_dir()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        server.run("initdb", &mut initdb)?;
        server.resume().await?;
        Ok(server)
    }

    /// Adds `include 'conf'` to the cluster's `postgresql.conf`, unless it
    /// is there already; says whether it added it. It takes effect at the
    /// next start ([`stop`](Self::stop), then [`resume`](Self::resume)).
    pub fn include_config(&self, conf: &Path) -> Result<bool, PostgresServerError> {
        let main = self.data_dir().join("postgresql.conf");
        let line = format!("include '{}'", conf.display());
        let text = std::fs::read_to_string(&main)
            .map_err(|e| PostgresServerError::Spawn("read postgresql.conf", e))?;
        if text.lines().any(|l| l.trim() == line) {
            return Ok(false);
        }
        std::fs::write(&main, format!("{text}\n{line}\n"))
            .map_err(|e| PostgresServerError::Spawn("write postgresql.conf", e))?;
        Ok(true)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server at once (SIGKILL to the postmaster, as a crash does).
    pub fn kill(&self) -> Result<(), PostgresServerError> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .map_err(|e| PostgresServerError::Spawn("read postmaster.pid", e))?;
        let pid = pid_file
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        self.run("kill", Command::new("kill").args(["-KILL", &pid]))?;
        // The postmaster's children notice its death and exit; wait until
        // the pid file's owner is gone so a restart is not refused.
        let deadline = Instant::now() + START_TIMEOUT;
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`).
    pub fn stop(&self) -> Result<(), PostgresServerError> {
        let mut stop = self.pg_ctl();
        stop.args(["stop", "-w", "-m", "fast"]);
        self.run("pg_ctl stop", &mut stop)
    }

    /// Starts the server again on the same data directory and port (after
    /// [`kill`](Self::kill) or [`stop`](Self::stop): crash recovery runs).
    pub async fn resume(&self) -> Result<(), PostgresServerError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.join("sock").display()
        );
        let mut start = self.pg_ctl();
        start
            .args(["start", "-l"])
            .arg(self.dir.join("server.log"))
            .args(["-o", &options]);
        // pg_ctl waits until the server runs; ready means a query answers.
        self.run("pg_ctl start", &mut start)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok((client, conn)) =
                tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await
            {
                tokio::spawn(conn);
                if client.simple_query("SELECT 1").await.is_ok() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(PostgresServerError::NotReady {
            port: self.port,
            log: std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default(),
        })
    }

    /// The cluster's data directory (owned by the server's user).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&self) -> Command {
        let mut c = self.command("pg_ctl");
        c.arg("-D").arg(self.data_dir()).arg("-s");
        c
    }

    /// A server program, run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &'static str, command: &mut Command) -> Result<(), PostgresServerError> {
        let out: Output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| PostgresServerError::Spawn(program, e))?;
        if out.status.success() {
            return Ok(());
        }
        Err(PostgresServerError::Failed {
            program,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A kept cluster stops cleanly (no crash recovery at its next start).
        let mode = if self.persistent { "fast" } else { "immediate" };
        let mut stop = self.pg_ctl();
        let _ = stop
            .args(["stop", "-w", "-m", mode])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !self.persistent {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `$PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`, else the
/// directory of `initdb` on `PATH`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin);
    newest.or_else(|| {
        let initdb = find_program("INITDB", "initdb")?;
        // A symlink on PATH (Debian's /usr/local/bin/initdb) points at the real bin dir.
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        real.parent().map(Path::to_path_buf)
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
