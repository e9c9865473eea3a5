//! What the kernel says about a process: CPU time, memory, file limits.
//!
//! Read from `/proc/<pid>/stat` (user + system time of every thread, in
//! clock ticks), `/proc/<pid>/status` (`VmRSS`, `VmHWM`) and
//! `/proc/self/limits`. Linux only, as is the harness.

use std::time::Instant;

/// Clock ticks per second in `/proc/<pid>/stat`: the kernel's `USER_HZ`,
/// which is 100 on every architecture Linux exports to user space.
const USER_HZ: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("unexpected contents in {0}")]
    Parse(String),
}

fn read(path: &str) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.to_string(),
        source,
    })
}

/// CPU seconds (user + system, all threads) a process has used.
pub fn cpu_seconds(pid: u32) -> Result<f64, ProcError> {
    let path = format!("/proc/{pid}/stat");
    let stat = read(&path)?;
    // The command name (field 2) may hold spaces; fields resume after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| ProcError::Parse(path.clone()))?;
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let mut fields = rest.split_whitespace().skip(11);
    let mut tick = || -> Result<f64, ProcError> {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64 / USER_HZ)
            .ok_or_else(|| ProcError::Parse(path.clone()))
    };
    Ok(tick()? + tick()?)
}

/// A `kB` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, key: &str) -> Result<u64, ProcError> {
    let path = format!("/proc/{pid}/status");
    let status = read(&path)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| ProcError::Parse(format!("{path} ({key})")))
}

/// Resident memory now, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, ProcError> {
    status_bytes(pid, "VmRSS")
}

/// Peak resident memory since the process started, in bytes.
pub fn peak_rss_bytes(pid: u32) -> Result<u64, ProcError> {
    status_bytes(pid, "VmHWM")
}

/// This process's soft limit on open files.
pub fn open_files_limit() -> Result<u64, ProcError> {
    let path = "/proc/self/limits";
    let limits = read(path)?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or_else(|| ProcError::Parse(path.to_string()))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()
        .ok_or_else(|| ProcError::Parse(path.to_string()))?;
    Ok(if soft == "unlimited" {
        u64::MAX
    } else {
        soft.parse()
            .map_err(|_| ProcError::Parse(path.to_string()))?
    })
}

/// CPU use of one process over a window, as a percentage of one core.
#[derive(Clone, Copy, Debug)]
pub struct CpuMeter {
    pid: u32,
    cpu: f64,
    at: Instant,
}

impl CpuMeter {
    /// Starts measuring `pid` now.
    pub fn start(pid: u32) -> Result<CpuMeter, ProcError> {
        Ok(CpuMeter {
            pid,
            cpu: cpu_seconds(pid)?,
            at: Instant::now(),
        })
    }

    /// Percent of one core used since [`start`](CpuMeter::start) (200 = two cores busy).
    pub fn percent(&self) -> Result<f64, ProcError> {
        let used = cpu_seconds(self.pid)? - self.cpu;
        let wall = self.at.elapsed().as_secs_f64();
        Ok(if wall > 0.0 { 100.0 * used / wall } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let meter = CpuMeter::start(me).unwrap_or_else(|e| panic!("{e}"));
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(meter.percent().unwrap_or(-1.0) >= 0.0);
        let rss = rss_bytes(me).unwrap_or(0);
        assert!(rss > 0 && peak_rss_bytes(me).unwrap_or(0) >= rss);
        assert!(open_files_limit().unwrap_or(0) > 0);
        assert!(matches!(cpu_seconds(u32::MAX), Err(ProcError::Read { .. })));
    }
}
