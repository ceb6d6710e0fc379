//! Bench settings from the command line or the environment, and the command line a report
//! prints so a reader can rerun exactly that.

/// The arguments after the program; cargo's own `--bench` among them is ignored by every lookup.
pub fn args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// `--flag N` beats `$VAR` beats `default`.
pub fn number(args: &[String], flag: &str, var: &str, default: u64) -> u64 {
    flag_value(args, flag)
        .or_else(|| std::env::var(var).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `VAR=value ... cargo bench --bench NAME [-- flags]`, with the given variables that were set.
pub fn command_line(bench: &str, vars: &[&str]) -> String {
    let mut parts: Vec<String> = vars
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
    parts.push(format!("cargo bench --bench {bench}"));
    let flags: Vec<String> = args().into_iter().filter(|a| a != "--bench").collect();
    if !flags.is_empty() {
        parts.push(format!("-- {}", flags.join(" ")));
    }
    parts.join(" ")
}

/// `--flag N` or `--flag=N`.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let prefixed = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&prefixed).map(str::to_string)
        }
    })
}
