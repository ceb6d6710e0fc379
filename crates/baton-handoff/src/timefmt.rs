//! UTC timestamps for status output.

use std::time::SystemTime;

/// `2026-11-26T23:09:58Z`.
pub fn rfc3339(t: SystemTime) -> String {
    baton_clock::Utc::from_system(t).rfc3339()
}
