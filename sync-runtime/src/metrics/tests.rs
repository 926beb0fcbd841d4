//! Tests of the metrics: gauges derived from state, counters advanced by differences, fixed
//! label values present from registration, per-relay series removed with their relay.

use super::*;
use sync_core::{Config, Input, Now};

/// Fresh metrics and a core whose only relay is the bootstrap relay `wss://other.relay`.
fn fixture() -> (Metrics, SyncCore, Exported, sync_core::RelayUrl, Now) {
    let config = Config {
        own_relay_urls: vec!["wss://our.relay".into()],
        bootstrap_relays: vec!["wss://other.relay".into()],
        startup_jitter_ms: 0,
        ..Config::default()
    };
    let now = Now::at(0, 1_700_000_000);
    (
        Metrics::register(Registry::new()).unwrap(),
        SyncCore::new(config, 1, now),
        Exported::default(),
        sync_core::RelayUrl::parse("wss://other.relay").unwrap(),
        now,
    )
}

#[test]
fn gauges_follow_state_and_counters_advance_by_differences() {
    let (metrics, mut core, mut exported, relay, now) = fixture();
    let _ = core.step(now, Input::Tick);
    metrics.observe(&core, &mut exported);
    let text = metrics.text();
    assert!(
        text.contains("ngit_sync_relay_connected{relay=\"wss://other.relay\"} 1"),
        "{text}"
    );
    let _ = core.step(
        now.plus_ms(5),
        Input::ConnectFailed {
            relay: relay.clone(),
            error: "connection refused".into(),
        },
    );
    metrics.observe(&core, &mut exported);
    metrics.observe(&core, &mut exported);
    let text = metrics.text();
    assert!(
        text.contains(
            "ngit_sync_connection_attempts_total{relay=\"wss://other.relay\",result=\"failure\"} 1"
        ),
        "observing twice must not double-count: {text}"
    );
    assert!(
        text.contains("ngit_sync_relay_connected{relay=\"wss://other.relay\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("ngit_sync_relay_failures{relay=\"wss://other.relay\"} 1"),
        "{text}"
    );
    assert!(text.contains("ngit_sync_relays_tracked_total 1"), "{text}");
}

#[test]
fn series_of_relays_no_longer_tracked_are_removed() {
    let metrics = Metrics::register(Registry::new()).unwrap();
    let mut exported = Exported::default();
    let config = Config {
        own_relay_urls: vec!["wss://our.relay".into()],
        startup_jitter_ms: 0,
        discovery_window_ms: 10,
        ..Config::default()
    };
    let now = Now::at(0, 1_700_000_000);
    let mut core = SyncCore::new(config, 1, now);
    let coord = sync_core::RepoCoord::parse(&format!(
        "30617:{}:r",
        nostr::Keys::generate().public_key().to_hex()
    ))
    .unwrap();
    let relays = vec!["wss://gone.relay".to_string()];
    let level = sync_core::SyncLevel::Full;
    let _ = core.step(
        now,
        Input::RegisterRepo {
            coord: coord.clone(),
            relays,
            level,
        },
    );
    let _ = core.step(now.plus_ms(20), Input::Tick);
    metrics.observe(&core, &mut exported);
    metrics.observe_frames(&[("wss://gone.relay".into(), 4)], &mut exported);
    assert!(metrics.text().contains("relay=\"wss://gone.relay\""));
    let _ = core.step(now.plus_ms(30), Input::WithdrawRepo { coord });
    let _ = core.step(now.plus_ms(60), Input::Tick);
    let _ = core.step(now.plus_ms(10_000), Input::Tick);
    assert_eq!(core.relay_status().count(), 0, "the relay was reaped");
    metrics.observe(&core, &mut exported);
    let text = metrics.text();
    assert!(!text.contains("wss://gone.relay"), "{text}");
    assert!(exported.totals.keys().all(|k| !k.contains("gone.relay")));
}

#[test]
fn fixed_label_values_exist_before_any_activity() {
    let metrics = Metrics::register(Registry::new()).unwrap();
    let text = metrics.text();
    for line in [
        "ngit_sync_naughty_relays_total{category=\"address_refused\"} 0",
        "ngit_sync_naughty_relays_total{category=\"dns_lookup_failed\"} 0",
        "ngit_sync_rejected_hot_cache_current{event_type=\"announcement\"} 0",
        "ngit_sync_rejected_cold_index_current{event_type=\"state\"} 0",
        "ngit_sync_rejected_hot_cache_misses_total{event_type=\"state\"} 0",
        "ngit_sync_rejected_invalidated_total{event_type=\"announcement\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from {text}");
    }
}

#[test]
fn disconnects_and_naughty_info_follow_the_relay() {
    let (metrics, mut core, mut exported, relay, now) = fixture();
    let _ = core.step(now, Input::Tick);
    let _ = core.step(
        now.plus_ms(5),
        Input::Connected {
            relay: relay.clone(),
        },
    );
    let _ = core.step(
        now.plus_ms(9),
        Input::Disconnected {
            relay: relay.clone(),
        },
    );
    metrics.observe(&core, &mut exported);
    let text = metrics.text();
    let disconnects = "ngit_sync_relay_disconnects_total{relay=\"wss://other.relay\"} 1";
    assert!(text.contains(disconnects), "{text}");
    let later = now.plus_ms(3_600_000);
    let _ = core.step(later, Input::Tick);
    let address = sync_core::NonGlobal::Private;
    let refused = Input::ConnectRefused {
        relay: relay.clone(),
        address,
    };
    let _ = core.step(later.plus_ms(1), refused);
    metrics.observe(&core, &mut exported);
    let text = metrics.text();
    let info = "ngit_sync_naughty_relay_info{category=\"address_refused\",reason=\"resolves to a non-global address\",relay=\"wss://other.relay\"}";
    assert!(text.contains(info), "{text}");
    let count = "ngit_sync_naughty_relays_total{category=\"address_refused\"} 1";
    assert!(text.contains(count), "{text}");
    let _ = core.step(later.plus_ms(2 * 3_600_000), Input::Tick);
    let _ = core.step(later.plus_ms(2 * 3_600_000 + 1), Input::Connected { relay });
    metrics.observe(&core, &mut exported);
    let text = metrics.text();
    assert!(
        !text.contains("ngit_sync_naughty_relay_info{"),
        "cleared: {text}"
    );
}

#[test]
fn a_second_registration_in_the_same_registry_is_an_error() {
    let registry = Registry::new();
    let _first = Metrics::register(registry.clone()).unwrap();
    assert!(Metrics::register(registry).is_err());
}
