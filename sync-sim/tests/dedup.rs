//! Issue 12, deliverable 4: an id that two relays' diffs both find missing crosses the wire
//! once; if the relay fetching it fails, the other relay fetches it (nothing is lost).

use sync_core::{Input, Status};
use sync_sim::script::*;

const OUR: &str = "wss://our.relay";
const R0: &str = "wss://r0.example";
const R1: &str = "wss://r1.example";

/// Two relays holding the same repository (see [`repo_world`]).
fn two_relays() -> World {
    repo_world(scenario_cfg(OUR), OUR, &[R0, R1], Remote::default())
}

/// `ids` subscriptions the core opened on the relay the table calls `alias`.
fn id_fetches(w: &World, alias: &str) -> usize {
    let needle = format!("→ Subscribe {alias} ");
    w.lines
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains(&needle) && l.contains(" ids×"))
        .count()
}

/// Every event of the repository is stored at the end.
fn all_stored(w: &World) -> bool {
    let on_r0 = &w.remotes[&url(R0)].events;
    on_r0.iter().all(|e| w.store.contains(&e.id))
}

#[test]
fn ids_found_missing_on_two_relays_are_fetched_from_one() {
    let mut w = two_relays();
    w.run_until(60_000);
    assert!(all_stored(&w), "{}", w.table());
    assert!(id_fetches(&w, "r0") > 0, "{}", w.table());
    assert_eq!(
        id_fetches(&w, "r1"),
        0,
        "r1 fetched ids r0 was fetching\n{}",
        w.table()
    );
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(w.status(R1), Some(Status::Connected));
}

#[test]
fn ids_deferred_to_a_relay_that_disconnects_mid_fetch_are_fetched_from_the_other() {
    let mut w = two_relays();
    // Both diffs answer at +5.020 s and r0's `ids` REQ goes out then; its answer is due at
    // +5.030 s. r0 drops before it arrives.
    w.run_until(5_025);
    assert_eq!(id_fetches(&w, "r0"), 1, "{}", w.table());
    assert_eq!(id_fetches(&w, "r1"), 0, "{}", w.table());
    w.remotes.get_mut(&url(R0)).expect("r0").down = true;
    w.feed(Input::Disconnected { relay: url(R0) });
    assert!(
        id_fetches(&w, "r1") > 0,
        "r1 did not take over r0's ids\n{}",
        w.table()
    );
    w.run_until(120_000);
    assert!(all_stored(&w), "an event was lost\n{}", w.table());
    assert_eq!(w.status(R1), Some(Status::Connected), "{}", w.table());
}

/// A relay whose diff reports ids it then does not serve (`ids` REQs answered with nothing):
/// its round ends without them, the relay that deferred to it fetches them itself, and when
/// that relay does not serve them either both fall back to REQ; everything is stored.
#[test]
fn ids_the_fetching_relay_does_not_deliver_are_fetched_by_the_deferring_relay() {
    let remote = Remote {
        id_cap: 0,
        ..Remote::default()
    };
    let mut w = repo_world(scenario_cfg(OUR), OUR, &[R0, R1], remote);
    w.run_until(120_000);
    assert!(all_stored(&w), "an event was lost\n{}", w.table());
    assert!(
        id_fetches(&w, "r1") > 0,
        "r1 never took over\n{}",
        w.table()
    );
    for r in [R0, R1] {
        assert!(
            matches!(
                w.status(r),
                Some(Status::Connected | Status::ConnectedHistoricSyncFailures)
            ),
            "{}",
            w.table()
        );
    }
}
