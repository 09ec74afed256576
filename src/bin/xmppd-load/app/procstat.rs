//! Reading a process's memory and CPU time from /proc (Linux).

use std::sync::OnceLock;

/// Resident set size of `pid` in KiB (`VmRSS` in /proc/PID/status).
pub fn rss_kb(pid: u32) -> Option<u64> {
    status_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Resident set size of this process in KiB.
pub fn self_rss_kb() -> Option<u64> {
    status_field("/proc/self/status", "VmRSS:")
}

fn status_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// User plus system CPU seconds used so far by `pid` (all its threads).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    cpu_from(&format!("/proc/{pid}/stat"))
}

/// User plus system CPU seconds used so far by this process.
pub fn self_cpu_secs() -> Option<f64> {
    cpu_from("/proc/self/stat")
}

fn cpu_from(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // proc(5): the command name is in parentheses and may hold spaces, so
    // fields are counted after the last ')': state is field 3, utime 14, stime 15.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks() as f64)
}

/// CPU seconds the whole machine spent busy (not idle or iowait) since boot,
/// from the `cpu` line of /proc/stat.
pub fn machine_busy_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest counted in user).
    let busy: u64 = v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum();
    Some(busy as f64 / clock_ticks() as f64)
}

/// Machine-wide TCP counters from /proc/net/netstat (`TcpExt:` lines), e.g.
/// `TCPSynRetrans` or `ListenOverflows`: a retransmitted SYN costs a login
/// a second or more, so a run reports how many happened during it.
pub fn tcp_ext(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names.zip(values).find(|(n, _)| *n == name).and_then(|(_, v)| v.parse().ok())
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf CLK_TCK` once (100 on Linux
/// unless the kernel says otherwise).
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t: &u64| t > 0)
            .unwrap_or(100)
    })
}

/// The soft limit on open files of this process (`Max open files`).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_self() {
        assert!(super::self_rss_kb().unwrap() > 0);
        assert!(super::self_cpu_secs().unwrap() >= 0.0);
        assert!(super::clock_ticks() > 0);
        assert!(super::machine_busy_secs().unwrap() > 0.0);
        assert!(super::tcp_ext("TCPSynRetrans").is_some());
    }
}
