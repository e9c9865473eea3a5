//! nginx in front of gateways, as deployed: Debian's `nginx` running
//! `assets/deploy/nginx.conf`, compiled in as [`DEPLOY_CONFIG`].
//!
//! [`render`] rewrites only the lines that config marks `# EDIT: <what>`:
//! the gateways' `server` lines, the `listen` address, nginx's own files
//! (moved into a prefix directory) and `user` (dropped: nginx runs as the
//! caller). [`Nginx::start`] runs `nginx` (`$NGINX`, else from `PATH` or
//! `/usr/sbin`) with that rendering in the foreground, with a fresh temporary
//! prefix and a free loopback port, and waits until it accepts connections.
//! Dropping the value stops nginx, workers included, and removes the prefix.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::{find_program, free_port};

/// The production config, `assets/deploy/nginx.conf`.
pub const DEPLOY_CONFIG: &str = include_str!("../../assets/deploy/nginx.conf");

/// What ends a line an operator edits; the word after it says what it is.
const MARK: &str = "# EDIT:";
/// How long a fresh nginx may take to accept connections, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error(
        "nginx not found on PATH or in /usr/sbin: install it (apt-get install nginx) or set NGINX"
    )]
    NotFound,
    #[error("nginx config template, {0}")]
    Template(String),
    #[error("cannot start nginx: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("nginx did not accept connections on {addr} within {START_TIMEOUT:?}; its error log:\n{log}")]
    NotReady { addr: SocketAddr, log: String },
    #[error("nginx exited at start ({status}); its error log:\n{log}")]
    Exited { status: ExitStatus, log: String },
}

/// `template` with its marked lines rewritten: nginx listens on `listen`,
/// proxies to `gateways` (each with the parameters of the template's first
/// gateway line), and keeps its pid, logs and temporary files in `prefix`.
pub fn render(
    template: &str,
    listen: SocketAddr,
    gateways: &[SocketAddr],
    prefix: &Path,
) -> Result<String, NginxError> {
    let mut out = String::with_capacity(template.len());
    let (mut listens, mut upstreams) = (0, 0);
    for (n, line) in template.lines().enumerate() {
        let marked = line
            .split_once(MARK)
            .filter(|_| !line.trim_start().starts_with('#'));
        let Some((code, what)) = marked else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let bad = |why: &str| NginxError::Template(format!("line {}: {why}: {line}", n + 1));
        let indent = &code[..code.len() - code.trim_start().len()];
        let directive = code
            .trim()
            .strip_suffix(';')
            .ok_or_else(|| bad("not one directive"))?;
        let mut words = directive.split_whitespace();
        let (Some(name), Some(arg)) = (words.next(), words.next()) else {
            return Err(bad("not one directive"));
        };
        let rest: String = words.map(|w| format!(" {w}")).collect();
        let mut emit = |arg: &str| out.push_str(&format!("{indent}{name} {arg}{rest};\n"));
        match what.trim() {
            "user" => {}
            "listen" => {
                listens += 1;
                if listens == 1 {
                    emit(&listen.to_string());
                }
            }
            "gateway" => {
                upstreams += 1;
                if upstreams == 1 {
                    gateways.iter().for_each(|g| emit(&g.to_string()));
                }
            }
            "path" => {
                let file = Path::new(arg)
                    .file_name()
                    .ok_or_else(|| bad("no file name"))?;
                emit(&format!("\"{}\"", prefix.join(file).display()));
            }
            other => return Err(bad(&format!("unknown mark {other:?}"))),
        }
    }
    if listens == 0 || upstreams == 0 {
        return Err(NginxError::Template(format!(
            "needs a line marked `{MARK} listen` and one marked `{MARK} gateway`"
        )));
    }
    Ok(out)
}

/// A running nginx, stopped on drop.
pub struct Nginx {
    child: Child,
    bin: PathBuf,
    addr: SocketAddr,
    prefix: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with [`DEPLOY_CONFIG`] in front of `gateways` and waits
    /// until it accepts connections.
    pub async fn start(gateways: &[SocketAddr]) -> Result<Nginx, NginxError> {
        let bin = find_program("NGINX", "nginx").ok_or(NginxError::NotFound)?;
        let prefix = tempfile::Builder::new()
            .prefix("flowtape-nginx-")
            .tempdir()?;
        // Started by root, the workers run as `nobody`: they must reach the
        // temporary directories in here.
        std::fs::set_permissions(prefix.path(), std::fs::Permissions::from_mode(0o755))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = render(DEPLOY_CONFIG, addr, gateways, prefix.path())?;
        std::fs::write(prefix.path().join("nginx.conf"), config)?;
        let log = File::create(prefix.path().join("error.log"))?;
        let child = Self::command(&bin, prefix.path())
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut nginx = Nginx {
            child,
            bin,
            addr,
            prefix,
        };
        nginx.wait_ready().await?;
        Ok(nginx)
    }

    /// `nginx` with this prefix, its config and its error log.
    fn command(bin: &Path, prefix: &Path) -> Command {
        let mut command = Command::new(bin);
        command
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(prefix.join("error.log"));
        command
    }

    async fn wait_ready(&mut self) -> Result<(), NginxError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(NginxError::Exited {
                    status,
                    log: self.error_log(),
                });
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(NginxError::NotReady {
            addr: self.addr,
            log: self.error_log(),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateways' WebSocket endpoint, through nginx.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// nginx's error log so far (its stderr too), for diagnostics.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL would leave the workers running (and listening): a fast
        // shutdown (`-s stop`, SIGTERM) takes them down with the master.
        let _ = Self::command(&self.bin, self.prefix.path())
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_deploy_config_renders_into_the_prefix() {
        let gateways = [addr("127.0.0.1:7001"), addr("127.0.0.1:7002")];
        let prefix = Path::new("/tmp/ng");
        let text = render(DEPLOY_CONFIG, addr("127.0.0.1:9000"), &gateways, prefix)
            .unwrap_or_else(|e| panic!("{e}"));
        let code: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(code.contains(&"listen 127.0.0.1:9000 backlog=4096;"));
        let servers: Vec<&&str> = code
            .iter()
            .filter(|l| l.starts_with("server ") && l.ends_with(';'))
            .collect();
        assert_eq!(
            servers,
            [
                &"server 127.0.0.1:7001 max_fails=1 fail_timeout=10s;",
                &"server 127.0.0.1:7002 max_fails=1 fail_timeout=10s;"
            ]
        );
        assert!(code.contains(&"pid \"/tmp/ng/nginx.pid\";"));
        assert!(code.contains(&"error_log \"/tmp/ng/error.log\" warn;"));
        assert!(!code.iter().any(|l| l.starts_with("user ")));
        // Nothing of the system's is left to write to.
        for dir in ["/var/", "/run/", "/etc/"] {
            assert!(!code.iter().any(|l| l.contains(dir)), "{dir} in\n{text}");
        }
    }

    #[test]
    fn a_template_without_marks_is_refused() {
        let text = "events {}\nhttp { server { listen 80; } }\n";
        let rendered = render(text, addr("127.0.0.1:1"), &[], Path::new("/tmp"));
        assert!(matches!(rendered, Err(NginxError::Template(_))));
        let text = "listen 80;  # EDIT: listne\n";
        let rendered = render(text, addr("127.0.0.1:1"), &[], Path::new("/tmp"));
        assert!(matches!(rendered, Err(NginxError::Template(m)) if m.contains("listne")));
    }
}
