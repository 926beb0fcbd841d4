//! Bounds on the events the runtime accepts from remote relays (docs/spec.md §13).
//!
//! nostr-sdk drops oversized events and events with more than 2 000 tags silently, before the
//! runtime sees them. A negentropy diff then keeps finding such an event "missing", its id
//! fetch never delivers it, and the batch falls back to REQ pagination every day. So the SDK's
//! own event checks are switched off and the same bounds are applied here, where an event
//! over them is counted (`ngit_sync_events_dropped_total{reason}`) and reported to the core as
//! rejected: delivered, so the id fetch completes, and never stored. The host applies the same
//! bounds to its own clients (`grasp::LocalRelayPolicy::with_limits`), so what a client may
//! publish and what sync may bring in agree.
//!
//! NIP-70 protected events (a `["-"]` tag) may only be published by their authenticated
//! author; sync has no such author, so they are never accepted from it.

use nostr::Event;
use nostr_sdk::pool::relay::limits::{RelayEventLimits, RelayLimits, RelayMessageLimits};
use serde::{Deserialize, Serialize};

/// Size and tag bounds on events, from sync and from the host's clients alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventLimits {
    /// Largest accepted event, in bytes of its JSON serialisation.
    pub max_event_bytes: usize,
    /// Most tags an accepted event may carry.
    pub max_event_tags: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: 512 * 1024,
            max_event_tags: 2_000,
        }
    }
}

/// Why an event is refused before the host's policy sees it. Labels are stable (metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventRefusal {
    /// NIP-70 protected (`["-"]` tag): only its authenticated author may publish it.
    Protected,
    /// More than `max_event_tags` tags.
    TooManyTags,
    /// Larger than `max_event_bytes`.
    TooLarge,
}

impl EventRefusal {
    /// The metric label.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Protected => "protected",
            Self::TooManyTags => "too_many_tags",
            Self::TooLarge => "too_large",
        }
    }
}

impl EventLimits {
    /// Why `event` is refused, checked cheapest first; `None` if it is within the bounds.
    /// `protected` says whether NIP-70 protected events are refused (always from sync).
    #[must_use]
    pub fn refusal(&self, event: &Event, protected: bool) -> Option<EventRefusal> {
        if protected && event.tags.iter().any(|t| t.as_slice() == ["-"]) {
            return Some(EventRefusal::Protected);
        }
        if event.tags.len() > self.max_event_tags {
            return Some(EventRefusal::TooManyTags);
        }
        if serialized_len(event) > self.max_event_bytes {
            return Some(EventRefusal::TooLarge);
        }
        None
    }

    /// The largest WebSocket message accepted from a remote relay: room for one event at the
    /// limit (JSON escaping can double it) plus the envelope. A larger message ends the
    /// connection, which bounds what one hostile relay can make us buffer.
    #[must_use]
    pub fn max_message_bytes(&self) -> usize {
        self.max_event_bytes
            .saturating_mul(2)
            .saturating_add(64 * 1024)
    }

    /// nostr-sdk's limits for sync connections: its event checks off (they drop silently;
    /// ours count and report), its message check at [`EventLimits::max_message_bytes`].
    pub(crate) fn sdk_limits(&self) -> RelayLimits {
        RelayLimits {
            messages: RelayMessageLimits {
                max_size: Some(u32::try_from(self.max_message_bytes()).unwrap_or(u32::MAX)),
            },
            events: RelayEventLimits::disable(),
        }
    }
}

/// The length of `event`'s JSON serialisation, without building the string.
fn serialized_len(event: &Event) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, event) {
        Ok(()) => count.0,
        // An event that cannot be serialised is not one to store.
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use nostr::{EventBuilder, JsonUtil, Keys, Kind, Tag};

    use super::*;

    fn event(tags: usize, content: &str, protected: bool) -> Event {
        let mut tags: Vec<Tag> = (0..tags)
            .map(|i| Tag::parse(["t", &i.to_string()]).unwrap())
            .collect();
        if protected {
            tags.push(Tag::protected());
        }
        EventBuilder::new(Kind::TextNote, content)
            .tags(tags)
            .sign_with_keys(&Keys::generate())
            .unwrap()
    }

    #[test]
    fn each_bound_refuses_just_past_it() {
        let limits = EventLimits {
            max_event_bytes: 2_000,
            max_event_tags: 10,
        };
        assert_eq!(limits.refusal(&event(10, "hi", false), true), None);
        assert_eq!(
            limits.refusal(&event(11, "hi", false), true),
            Some(EventRefusal::TooManyTags)
        );
        let big = event(0, &"x".repeat(2_000), false);
        assert_eq!(limits.refusal(&big, true), Some(EventRefusal::TooLarge));
        let protected = event(0, "hi", true);
        assert_eq!(
            limits.refusal(&protected, true),
            Some(EventRefusal::Protected)
        );
        assert_eq!(limits.refusal(&protected, false), None);
    }

    #[test]
    fn the_counted_length_is_the_json_length() {
        let e = event(3, "a \"quoted\" ünïcode\n", false);
        assert_eq!(serialized_len(&e), e.as_json().len());
    }

    #[test]
    fn the_sdk_drops_nothing_we_would_count() {
        let sdk = EventLimits::default().sdk_limits();
        assert_eq!(sdk.events.get_max_num_tags(&Kind::GitPatch), None);
        assert_eq!(sdk.events.get_max_size(&Kind::GitPatch), None);
        assert!(sdk.messages.max_size.unwrap() as usize > EventLimits::default().max_event_bytes);
    }
}
