//! The server process as Linux's /proc shows it: found by its listening port, measured by its resident memory.

use std::fs;

/// The pid of the process listening on TCP `port` (on any address), if /proc shows one this user may inspect.
pub fn find_by_port(port: u16) -> Option<u32> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let inode = target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'));
            if inode.is_some_and(|inode| inodes.iter().any(|known| known == inode)) {
                return Some(pid);
            }
        }
    }
    None
}

/// The socket inodes of listening TCP sockets on `port`, from /proc/net/tcp and tcp6.
fn listening_inodes(port: u16) -> Vec<String> {
    let port_hex = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl, local_address, rem_address, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode
            const LISTEN: &str = "0A";
            if fields.len() > 9 && fields[1].ends_with(&port_hex) && fields[3] == LISTEN {
                inodes.push(fields[9].to_owned());
            }
        }
    }
    inodes
}

/// The resident set size of process `pid` in KiB (VmRSS in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_listener_of_this_process_and_reads_its_memory() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(find_by_port(port), Some(std::process::id()));
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
