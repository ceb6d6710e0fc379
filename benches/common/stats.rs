//! The one percentile the benches report: nearest rank, as baton-load's own reports use it.
//! The median is its p50, which is the lower middle for even counts.

/// Nearest-rank percentile `p` (0–100) of a sorted slice; `None` when it is empty.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Values sorted for [`nearest_rank`].
pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// Median and maximum of unsorted values.
pub fn median_max(values: Vec<f64>) -> (Option<f64>, Option<f64>) {
    let v = sorted(values);
    (nearest_rank(&v, 50.0), v.last().copied())
}
