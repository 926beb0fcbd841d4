//! What this process used, per phase: peak resident memory (`VmHWM` from `/proc/self/status`,
//! reset between phases by writing `5` to `/proc/self/clear_refs`, Linux ≥ 4.0) and CPU time
//! (user + system, from `/proc/self/stat`). The source relays run in this process too.

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

/// User + system CPU time of the process so far, in milliseconds (0 if unreadable).
pub(crate) fn cpu_ms() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks * 1000 / CLOCK_TICKS_PER_SEC
}

/// `USER_HZ` on Linux (100 on every mainstream architecture).
const CLOCK_TICKS_PER_SEC: u64 = 100;
