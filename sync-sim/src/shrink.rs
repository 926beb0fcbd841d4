//! Shrinking: reduce a failing scenario (fewer faults, events, relays, a shorter safety phase)
//! while it still fails with the same invariant tag. A greedy delta-debugging pass: try to
//! remove halves, then quarters, … of each list, keep every candidate that still fails.

use crate::run::run;
use crate::scenario::Scenario;

/// A shrunk scenario and the invariant it breaks.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smaller scenario.
    pub scenario: Scenario,
    /// The invariant tag it still breaks.
    pub invariant: String,
}

/// The invariant `s` breaks, if any.
fn failing(s: &Scenario) -> Option<String> {
    run(s, false).violation.map(|v| v.invariant)
}

/// Removes chunks of the list `get` selects while `still_fails`; returns whether it changed.
fn shrink_list<T: Clone>(
    s: &mut Scenario,
    get: fn(&mut Scenario) -> &mut Vec<T>,
    still_fails: &dyn Fn(&Scenario) -> bool,
    log: &mut dyn FnMut(String),
    what: &str,
) -> bool {
    let mut changed = false;
    let mut chunk = get(s).len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < get(s).len() {
            let mut candidate = s.clone();
            let list = get(&mut candidate);
            let end = (i + chunk).min(list.len());
            list.drain(i..end);
            if still_fails(&candidate) {
                *s = candidate;
                changed = true;
                log(format!(
                    "  removed {} {what} ({} left)",
                    end - i,
                    get(s).len()
                ));
            } else {
                i += chunk;
            }
        }
        if chunk == 1 {
            return changed;
        }
        chunk = chunk.div_ceil(2);
    }
}

/// Shrinks `scenario` if it fails; `log` receives progress lines.
pub fn shrink(scenario: &Scenario, mut log: impl FnMut(String)) -> Option<Shrunk> {
    let invariant = failing(scenario)?;
    log(format!("shrink: the scenario fails `{invariant}`"));
    let still_fails = |c: &Scenario| failing(c).as_deref() == Some(invariant.as_str());
    let mut s = scenario.clone();
    for _ in 0..4 {
        let mut changed = false;
        // A shorter safety phase (faults beyond it dropped).
        while s.safety_ms > 60_000 {
            let mut c = s.clone();
            c.safety_ms /= 2;
            c.faults.retain(|f| f.at_ms < c.safety_ms);
            if !still_fails(&c) {
                break;
            }
            log(format!("  safety phase halved to {} ms", c.safety_ms));
            s = c;
            changed = true;
        }
        changed |= shrink_list(&mut s, |s| &mut s.faults, &still_fails, &mut log, "faults");
        changed |= shrink_list(&mut s, |s| &mut s.initial, &still_fails, &mut log, "events");
        changed |= shrink_list(
            &mut s,
            |s| &mut s.local,
            &still_fails,
            &mut log,
            "local events",
        );
        changed |= shrink_list(&mut s, |s| &mut s.relays, &still_fails, &mut log, "relays");
        if !changed {
            break;
        }
    }
    Some(Shrunk {
        scenario: s,
        invariant,
    })
}
