//! What a client may send to our relay: the check of one text message before it reaches the
//! `LocalRelay`, and the answer to a refused one.
//!
//! nostr-relay-builder 0.44's `LocalRelay` ends a connection on the first message it cannot
//! parse (`ClientMessage::from_json(..)?` in its session loop) and on a negentropy payload that
//! is not hex or not a negentropy message (`hex::decode(..)?`, `reconcile(..)?`). The guard
//! runs the same parse first, so the relay only ever sees messages it accepts, and the client
//! is told `["NOTICE","invalid: ..."]` instead of losing its connection.

use std::borrow::Cow;

use negentropy::{Negentropy, NegentropyStorageVector};
use nostr::{ClientMessage, EventId, JsonUtil, RelayMessage, SubscriptionId};
use serde::Deserialize;

/// Longest error text quoted back to the client.
const MAX_DETAIL_CHARS: usize = 160;

/// Why a message was refused: the label of `ngit_sync_client_messages_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Not a NIP-01/NIP-77 client message (bad JSON, unknown command, bad field).
    Malformed,
    /// Larger than the configured limit.
    TooLarge,
    /// A binary WebSocket message (nostr is text only).
    Binary,
}

impl Reason {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::Binary => "binary",
        }
    }
}

/// A refused message: why, and what the client is sent (a NOTICE first, then a CLOSED, OK or
/// NEG-ERR when the message's subscription or event id could be read).
#[derive(Debug)]
pub(crate) struct Refusal {
    /// Why.
    pub(crate) reason: Reason,
    /// The answers, in order; never empty (the first is always the NOTICE).
    pub(crate) replies: Vec<String>,
}

impl Refusal {
    /// A NOTICE `invalid: {text}` alone.
    fn notice(reason: Reason, text: &str) -> Self {
        Self {
            reason,
            replies: vec![notice(text)],
        }
    }

    /// The refusal of a binary message.
    pub(crate) fn binary() -> Self {
        Self::notice(
            Reason::Binary,
            "binary messages are not accepted, send text",
        )
    }
}

/// Checks one text message: at most `max_bytes` long, a client message the relay parses, and
/// for NEG-OPEN/NEG-MSG a payload the relay can reconcile.
pub(crate) fn check(text: &str, max_bytes: usize) -> Result<(), Refusal> {
    if text.len() > max_bytes {
        return Err(too_large(text, max_bytes));
    }
    match ClientMessage::from_json(text) {
        Ok(ClientMessage::NegOpen {
            subscription_id,
            initial_message,
            ..
        }) => check_negentropy(&subscription_id, &initial_message),
        Ok(ClientMessage::NegMsg {
            subscription_id,
            message,
        }) => check_negentropy(&subscription_id, &message),
        Ok(_) => Ok(()),
        Err(e) => Err(Refusal::notice(
            Reason::Malformed,
            &format!("malformed message: {}", shorten(&e.to_string())),
        )),
    }
}

/// A negentropy payload must be hex and parse as a message: reconciled against an empty set
/// (cheap, linear in the payload) it fails exactly where the relay's reconciliation would.
fn check_negentropy(subscription_id: &SubscriptionId, hex_payload: &str) -> Result<(), Refusal> {
    let parsed = hex::decode(hex_payload)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            let mut storage = NegentropyStorageVector::new();
            storage.seal().map_err(|e| e.to_string())?;
            let mut negentropy = Negentropy::owned(storage, 60_000).map_err(|e| e.to_string())?;
            negentropy.reconcile(&bytes).map_err(|e| e.to_string())
        });
    let Err(problem) = parsed else {
        return Ok(());
    };
    let text = format!("malformed negentropy message: {}", shorten(&problem));
    let neg_err = RelayMessage::NegErr {
        subscription_id: Cow::Borrowed(subscription_id),
        message: Cow::Owned(format!("invalid: {text}")),
    };
    Err(Refusal {
        reason: Reason::Malformed,
        replies: vec![notice(&text), neg_err.as_json()],
    })
}

/// The refusal of an oversized message: a NOTICE, plus CLOSED for a REQ or OK false for an
/// EVENT whose id reads without parsing the whole message.
fn too_large(text: &str, max_bytes: usize) -> Refusal {
    let detail = format!("message too large ({} bytes, max {max_bytes})", text.len());
    let mut replies = vec![notice(&detail)];
    let answer = match leading_command(text) {
        Some(("REQ", rest)) => first_value::<SubscriptionId>(rest)
            .map(|id| RelayMessage::closed(id, format!("invalid: {detail}")).as_json()),
        Some(("EVENT", rest)) => first_value::<IdOnly>(rest)
            .map(|event| RelayMessage::ok(event.id, false, format!("invalid: {detail}")).as_json()),
        _ => None,
    };
    replies.extend(answer);
    Refusal {
        reason: Reason::TooLarge,
        replies,
    }
}

/// Only the id of an event object; every other field is skipped unparsed.
#[derive(Deserialize)]
struct IdOnly {
    /// The event id.
    id: EventId,
}

/// `["CMD", rest…`: the command and the text after its comma.
fn leading_command(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start().strip_prefix('[')?.trim_start();
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Cow<'_, str>>();
    let command = values.next()?.ok()?;
    let after = rest[values.byte_offset()..]
        .trim_start()
        .strip_prefix(',')?;
    match command.as_ref() {
        "REQ" => Some(("REQ", after)),
        "EVENT" => Some(("EVENT", after)),
        _ => None,
    }
}

/// The first JSON value of `text`, read without looking past it.
fn first_value<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<T>()
        .next()?
        .ok()
}

/// `["NOTICE","invalid: {text}"]`.
fn notice(text: &str) -> String {
    RelayMessage::notice(format!("invalid: {text}")).as_json()
}

/// At most [`MAX_DETAIL_CHARS`] characters of an error text.
fn shorten(text: &str) -> String {
    text.chars().take(MAX_DETAIL_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys};

    #[test]
    fn valid_messages_pass() {
        let event = EventBuilder::text_note("hi")
            .sign_with_keys(&Keys::generate())
            .expect("sign");
        let event_msg = ClientMessage::event(event).as_json();
        for text in [
            r#"["REQ","sub",{"kinds":[1]}]"#,
            r#"["CLOSE","sub"]"#,
            r#"["NEG-OPEN","n",{},"6100000200"]"#,
            event_msg.as_str(),
        ] {
            assert!(check(text, 10_000).is_ok(), "{text}");
        }
    }

    #[test]
    fn malformed_messages_get_a_notice() {
        for text in [
            "garbage",
            "[]",
            r#"["REQ"]"#,
            r#"["FOO","x"]"#,
            r#"{"a":1}"#,
        ] {
            let refusal = check(text, 10_000).unwrap_err();
            assert_eq!(refusal.reason, Reason::Malformed);
            assert_eq!(refusal.replies.len(), 1);
            assert!(
                refusal.replies[0].starts_with(r#"["NOTICE","invalid: malformed message"#),
                "{:?}",
                refusal.replies
            );
        }
    }

    #[test]
    fn a_bad_negentropy_payload_gets_a_notice_and_a_neg_err() {
        for payload in ["zz", "00", "61000005", "6100000201"] {
            let text = format!(r#"["NEG-OPEN","n",{{}},"{payload}"]"#);
            let refusal = check(&text, 10_000).unwrap_err();
            assert_eq!(refusal.reason, Reason::Malformed, "{payload}");
            assert!(refusal.replies[1].starts_with(r#"["NEG-ERR","n","invalid: "#));
        }
    }

    #[test]
    fn oversized_req_and_event_get_closed_and_ok_false() {
        let padding = "x".repeat(200);
        let req = format!(r#"["REQ","big",{{"search":"{padding}"}}]"#);
        let refusal = check(&req, 100).unwrap_err();
        assert_eq!(refusal.reason, Reason::TooLarge);
        assert!(refusal.replies[0].contains("message too large"));
        assert!(refusal.replies[1].starts_with(r#"["CLOSED","big","invalid: message too large"#));

        let event = EventBuilder::text_note(&padding)
            .sign_with_keys(&Keys::generate())
            .expect("sign");
        let text = ClientMessage::event(event.clone()).as_json();
        let refusal = check(&text, 100).unwrap_err();
        let ok = format!(r#"["OK","{}",false,"invalid: message too large"#, event.id);
        assert!(refusal.replies[1].starts_with(&ok), "{:?}", refusal.replies);

        let refusal = check(&format!("[{padding}"), 100).unwrap_err();
        assert_eq!(refusal.replies.len(), 1);
    }

    proptest::proptest! {
        /// Any text is either accepted or refused with a NOTICE first; nothing panics.
        #[test]
        fn any_text_is_checked_without_panicking(text in "(?s).{0,300}", max in 1usize..400) {
            if let Err(refusal) = check(&text, max) {
                proptest::prop_assert!(refusal.replies[0].starts_with(r#"["NOTICE","invalid: "#));
            }
        }
    }
}
