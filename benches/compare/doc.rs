//! Rewrites one marked section of `docs/benchmarks.md`, leaving everything else as it is.

use std::path::Path;

/// Replaces the text between `<!-- {name}:start -->` and `<!-- {name}:end -->`, appending the
/// section when the markers are missing.
pub fn write_section(path: &Path, name: &str, markdown: &str) -> std::io::Result<()> {
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
