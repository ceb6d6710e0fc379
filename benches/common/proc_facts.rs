//! What /proc says about a process the bench started.

/// What /proc says about a supervisor: memory, descriptors, and its children.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcFacts {
    pub rss_kb: u64,
    pub fds: usize,
    pub children: usize,
    pub zombies: usize,
}

impl ProcFacts {
    /// Zeroes where /proc cannot tell; the report shows them rather than failing.
    pub fn of(pid: i32) -> ProcFacts {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        let kids = children(pid);
        ProcFacts {
            rss_kb,
            fds,
            children: kids.len(),
            zombies: kids.iter().filter(|(_, state)| *state == 'Z').count(),
        }
    }
}

/// Pid and state letter of every process whose parent is `pid`, from /proc/*/stat.
pub fn children(pid: i32) -> Vec<(i32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let child: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The command name may hold spaces and parens; fields resume after the last ')'.
            let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let state = rest.next()?.chars().next()?;
            let ppid: i32 = rest.next()?.parse().ok()?;
            (ppid == pid).then_some((child, state))
        })
        .collect()
}
