//! Sync+ bounds (docs/spec.md §15) for any input: per repository at most
//! `sync_plus_max_authors_per_repo` participants followed and `sync_plus_max_relays_per_repo`
//! relays used, at most `sync_plus_max_relays` Sync+ relays in all and `max_tracked_relays`
//! tracked; a Sync+ relay is asked only for the conversation of the repositories that use it.

use proptest::prelude::*;

use nostr::{EventId, Kind, PublicKey, Timestamp};

use crate::config::Config;
use crate::event_meta::{EventMeta, KIND_RELAY_LIST};
use crate::input::Input;
use crate::item::KeyKind;
use crate::time::Now;
use crate::{SyncCore, KIND_ANNOUNCEMENT};

fn pk(n: u8) -> PublicKey {
    crate::event_meta::tests::keys(n).public_key()
}

fn meta(
    n: u64,
    author: u8,
    kind: u16,
    tags: Vec<(char, String)>,
    relays: Vec<String>,
) -> EventMeta {
    let mut id = [0u8; 32];
    id[24..].copy_from_slice(&n.to_be_bytes());
    EventMeta {
        id: EventId::from_byte_array(id),
        author: pk(author),
        kind: Kind::from(kind),
        created_at: Timestamp::from(1_000 + n),
        tags,
        relays,
        clone_urls: Vec::new(),
        maintainers: Vec::new(),
    }
}

/// One input of the generated stream.
#[derive(Clone, Debug)]
enum Step {
    /// Owner `o` announces repository `d` listing relay `r` (and us).
    Announce(u8, u8, u8),
    /// Author `a` opens an issue on repository `(o, d)`.
    Issue(u8, u8, u8),
    /// Author `a` publishes a relay list naming relays `rs` (`10002` or `10317`).
    List(u8, bool, Vec<u8>),
    /// Time passes (minutes).
    Wait(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..3, 0u8..3, 0u8..6).prop_map(|(o, d, r)| Step::Announce(o, d, r)),
        (10u8..60, 0u8..3, 0u8..3).prop_map(|(a, o, d)| Step::Issue(a, o, d)),
        (
            0u8..60,
            any::<bool>(),
            proptest::collection::vec(0u8..80, 0..70)
        )
            .prop_map(|(a, g, rs)| Step::List(a, g, rs)),
        (1u8..120).prop_map(Step::Wait),
    ]
}

fn check(core: &SyncCore) -> Result<(), TestCaseError> {
    let cfg = &core.cfg;
    let plus = &core.want.plus;
    for (n, p) in &plus.repos {
        prop_assert!(p.authors.len() <= cfg.sync_plus_max_authors_per_repo);
        prop_assert!(p.relays.len() <= cfg.sync_plus_max_relays_per_repo);
        let own = core.want.coord(*n).and_then(|c| core.want.repo(c));
        for r in &p.relays {
            prop_assert!(!core.own.contains(r));
            prop_assert!(
                !own.is_some_and(|w| w.relays.contains(r)),
                "not its own relay"
            );
        }
    }
    prop_assert!(plus.relay_repos.len() <= cfg.sync_plus_max_relays);
    let wanted = core.want.relay_count() + core.bootstrap.len();
    prop_assert!(wanted <= cfg.max_tracked_relays, "{wanted} relays wanted");
    for url in plus.relay_repos.keys() {
        if core.want.is_announced(url) {
            continue;
        }
        for key in core.want.target_keys(url) {
            let ok = match key.kind() {
                KeyKind::RepoEvents(n) => plus.uses(n, url),
                KeyKind::Root(x) => core.want.root_repos(x).any(|n| plus.uses(n, url)),
                _ => false,
            };
            prop_assert!(
                ok,
                "a Sync+ relay is asked only for its repositories' conversation"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn bounds_hold_for_any_input(steps in proptest::collection::vec(step(), 1..120),
                                 max_authors in 1usize..5, max_relays in 1usize..6,
                                 global in 1usize..12, tracked in 3usize..20) {
        let cfg = Config {
            own_relay_urls: vec!["wss://our.example".into()],
            sync_plus: true,
            sync_plus_max_authors_per_repo: max_authors,
            sync_plus_max_relays_per_repo: max_relays,
            sync_plus_max_relays: global,
            max_tracked_relays: tracked,
            discovery_window_ms: 1_000,
            ..Config::default()
        };
        let mut now = Now::at(0, 1_700_000_000);
        let mut core = SyncCore::new(cfg, 3, now);
        let mut n = 0u64;
        for s in steps {
            n += 1;
            let event = match s {
                Step::Announce(o, d, r) => {
                    let mut e = meta(n, o, KIND_ANNOUNCEMENT, vec![('d', format!("d{d}"))], vec![
                        "wss://our.example".into(),
                        format!("wss://home{r}.example"),
                    ]);
                    e.maintainers.push(pk(o + 10));
                    Some(e)
                }
                Step::Issue(a, o, d) => {
                    let c = format!("30617:{}:d{d}", pk(o).to_hex());
                    Some(meta(n, a, 1621, vec![('a', c)], Vec::new()))
                }
                Step::List(a, g, rs) => {
                    let kind = if g { crate::KIND_GRASP_LIST } else { KIND_RELAY_LIST };
                    let urls = rs.iter().map(|r| match r % 4 {
                        0 => format!("ws://10.0.0.{r}"),
                        1 => "wss://our.example".to_string(),
                        _ => format!("wss://out{r}.example"),
                    });
                    Some(meta(n, a, kind, Vec::new(), urls.collect()))
                }
                Step::Wait(m) => {
                    now = now.plus_ms(u64::from(m) * 60_000);
                    None
                }
            };
            let input = event.map_or(Input::Tick, |event| Input::Accepted { event });
            let _commands = core.step(now, input);
            now = now.plus_ms(2_000);
            let _commands = core.step(now, Input::Tick);
            check(&core)?;
        }
    }
}
