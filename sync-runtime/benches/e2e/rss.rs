//! Peak resident memory of this process, per phase: `VmHWM` from `/proc/self/status`, reset
//! between phases by writing `5` to `/proc/self/clear_refs` (Linux ≥ 4.0).

/// Resets the peak to the current RSS. Returns false where that is not possible (then the
/// next reading is the peak since the process started).
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` (peak RSS since the last reset) in KiB, if readable.
pub(crate) fn peak_kib() -> Option<u64> {
    field_kib("VmHWM:")
}

fn field_kib(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// KiB as MiB with one decimal, or `?`.
pub(crate) fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
}
