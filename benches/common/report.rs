//! What every bench report shares: a header with the host's facts, and the one writer of the
//! marked sections of `docs/benchmarks.md`.

use std::path::Path;
use std::time::SystemTime;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The start of a bench run: its date and the host's load then, for the report's header.
pub struct Header {
    started: SystemTime,
    load_before: String,
}

impl Header {
    pub fn begin() -> Header {
        Header {
            started: SystemTime::now(),
            load_before: loadavg(),
        }
    }

    /// `## title`, then the date, `command` and the machine; `note` ends the machine line.
    pub fn render(&self, title: &str, command: &str, note: &str) -> String {
        format!(
            "## {title}\n\n- Date: {}\n- Command: {command}\n- Machine: {}; 1-min load average {} \
             before, {} after{note}\n",
            baton_clock::Utc::from_system(self.started).rfc3339(),
            machine(),
            self.load_before,
            loadavg()
        )
    }
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// `nproc 2, AMD EPYC`.
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_string());
    format!("nproc {}, {model}", nproc())
}

/// The 1-minute load average: other work on the host skews every figure.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_string()
}

pub fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// False with `BATON_BENCH_NO_WRITE=1`: a trial run reports on stdout and leaves the docs alone.
pub fn writes_docs() -> bool {
    std::env::var_os("BATON_BENCH_NO_WRITE").is_none_or(|v| v.is_empty() || v == "0")
}

/// Prints the report and, unless told not to, puts it into its section of the docs.
pub fn publish(section: &str, markdown: &str) {
    println!("{markdown}");
    if !writes_docs() {
        return;
    }
    let doc = repo().join("docs/benchmarks.md");
    match write_section(&doc, section, markdown) {
        Ok(()) => eprintln!("wrote {}", doc.display()),
        Err(e) => eprintln!("cannot update {}: {e}", doc.display()),
    }
}

/// Replaces the text between `<!-- {name}:start -->` and `<!-- {name}:end -->`, appending the
/// section when the markers are missing.
fn write_section(path: &Path, name: &str, markdown: &str) -> std::io::Result<()> {
    let (start, end) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let block = format!("{start}\n{}\n{end}", markdown.trim_end());
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{block}{}", &existing[..a], &existing[b + end.len()..])
        }
        _ => format!("{}\n\n{block}\n", existing.trim_end()),
    };
    std::fs::write(path, updated)
}
