//! The core's decisions, written to [`tracing`] with the relay and the reason
//! (docs/spec.md §10, §14). `tracing` does no IO of its own: with no subscriber installed (the
//! simulator, most tests) every call here is a cheap no-op, and the core stays pure. The shell
//! (or an embedder) installs a subscriber and sees every decision, whoever drives the core.
//!
//! Every line has the target `sync_core::decision_log` and a `relay` field; text that came
//! from a relay (CLOSED and NOTICE messages) is truncated to [`MAX_REMOTE_TEXT_CHARS`]
//! characters and escaped, so a hostile relay cannot forge log lines or flood them.
//!
//! | decision | level |
//! |---|---|
//! | relay status changed (e.g. `Syncing → Connected`: its historic sync completed) | info (to `Connecting`: debug) |
//! | connect failed, next attempt in N ms; put on the naughty list | info; warn |
//! | connection lost, next attempt in N ms | info |
//! | relay sent CLOSED (with its reason) / NOTICE | info / debug |
//! | rate limited: cooldown and REQ pace | warn |
//! | subscription budget shrunk after "too many subscriptions" | warn |
//! | historic batch failed: retried in N ms, or given up until the next resync | info; warn |
//! | NIP-77 not supported (for a day) / a batch falls back to REQ / a reconciliation timed out | info / debug / debug |
//! | page size learned (a relay caps pages below what it announces) | info |
//! | relay reaped (no repository wants it) | info |
//! | repository withdrawn from sync (the host's own line, with the reason, is at info) | debug |
//!
//! Nothing here is per event: the busiest line (a batch falling back to REQ) is per batch.

use crate::historic::batch::BatchFailure;
use crate::relay::health::ErrorClass;
use crate::relay::Status;
use crate::url::RelayUrl;

/// Characters of relay-supplied text kept in a log line.
pub(crate) const MAX_REMOTE_TEXT_CHARS: usize = 200;

/// `text` from a remote relay, made safe for a log line: at most [`MAX_REMOTE_TEXT_CHARS`]
/// characters, control characters and quotes escaped.
#[must_use]
pub(crate) fn remote_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_REMOTE_TEXT_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX_REMOTE_TEXT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A relay's status changed. A connect attempt is at `debug` (its outcome follows at `info`).
pub(crate) fn status_changed(relay: &RelayUrl, from: Status, to: Status) {
    if to == Status::Connecting {
        tracing::debug!(%relay, from = ?from, to = ?to, "relay status");
    } else {
        tracing::info!(%relay, from = ?from, to = ?to, "relay status");
    }
}

/// A connect attempt failed (`detail`: the shell's error text); the next one is in
/// `retry_in_ms`.
pub(crate) fn connect_failed(
    relay: &RelayUrl,
    class: ErrorClass,
    detail: &str,
    retry_in_ms: u64,
    naughty: bool,
) {
    let detail = remote_text(detail);
    if naughty {
        tracing::warn!(
            %relay,
            reason = class.label(),
            %detail,
            retry_in_ms,
            "relay keeps failing the same way: on the naughty list"
        );
    } else {
        tracing::info!(%relay, reason = class.label(), %detail, retry_in_ms, "connect failed");
    }
}

/// A live connection was lost; the next attempt is in `retry_in_ms`.
pub(crate) fn connection_lost(relay: &RelayUrl, retry_in_ms: u64, flapping: bool) {
    tracing::info!(%relay, retry_in_ms, flapping, "connection lost");
}

/// The relay closed a subscription.
pub(crate) fn closed(relay: &RelayUrl, sub: &str, message: &str) {
    tracing::info!(%relay, sub, reason = %remote_text(message), "relay closed a subscription");
}

/// The relay sent a NOTICE.
pub(crate) fn notice(relay: &RelayUrl, message: &str) {
    tracing::debug!(%relay, message = %remote_text(message), "relay notice");
}

/// The relay rate-limited us: no new subscription for `cooldown_ms`, then one REQ per
/// `pace_ms`.
pub(crate) fn rate_limited(relay: &RelayUrl, cooldown_ms: u64, pace_ms: u64) {
    tracing::warn!(%relay, cooldown_ms, pace_ms, "rate limited: cooling down and pacing REQs");
}

/// "Too many subscriptions": the relay's subscription budget is now `budget`.
pub(crate) fn budget_shrunk(relay: &RelayUrl, budget: usize) {
    tracing::warn!(%relay, budget, "too many subscriptions: budget shrunk");
}

/// The relay refused a REQ of several filters: at most `max_filters` per REQ from now on.
pub(crate) fn filters_shrunk(relay: &RelayUrl, max_filters: usize) {
    tracing::warn!(%relay, max_filters, "too many filters: filters per REQ lowered");
}

/// A historic batch failed for `why` after `attempt` attempts; retried in `retry_in_ms`, or
/// left to the next resync when `None`.
pub(crate) fn batch_failed(
    relay: &RelayUrl,
    batch: u64,
    why: BatchFailure,
    attempt: u32,
    retry_in_ms: Option<u64>,
) {
    match retry_in_ms {
        Some(retry_in_ms) => tracing::info!(
            %relay,
            batch,
            reason = why.label(),
            attempt,
            retry_in_ms,
            "historic batch failed: retrying"
        ),
        None => tracing::warn!(
            %relay,
            batch,
            reason = why.label(),
            attempt,
            "historic batch failed: its items wait for the next resync"
        ),
    }
}

/// The relay is taken not to speak NIP-77 (until the daily resync), for `reason`.
pub(crate) fn negentropy_unsupported(relay: &RelayUrl, reason: &str) {
    tracing::info!(%relay, reason, "NIP-77 unsupported: syncing with REQ");
}

/// A batch falls back from NIP-77 to REQ.
pub(crate) fn negentropy_fallback(relay: &RelayUrl, batch: u64) {
    tracing::debug!(%relay, batch, "batch falls back to REQ");
}

/// A reconciliation got no answer in time.
pub(crate) fn negentropy_timeout(relay: &RelayUrl, batch: u64, in_a_row: u32) {
    tracing::debug!(%relay, batch, in_a_row, "NIP-77 reconciliation timed out");
}

/// The relay's real page size was learned.
pub(crate) fn page_size_learned(relay: &RelayUrl, size: usize) {
    tracing::info!(%relay, page_size = size, "relay caps pages: page size learned");
}

/// No repository wants the relay any more: it is disconnected and forgotten.
pub(crate) fn reaped(relay: &RelayUrl) {
    tracing::info!(%relay, "relay reaped: no repository wants it");
}

/// The host withdrew a repository from sync (the host logs why, at info).
pub(crate) fn repo_withdrawn(coord: &str) {
    tracing::debug!(repo = coord, "repository withdrawn from sync");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn remote_text_escapes_and_truncates() {
        assert_eq!(remote_text("error: x\nFAKE line"), "error: x\\nFAKE line");
        let long = "a".repeat(MAX_REMOTE_TEXT_CHARS + 5);
        let kept = remote_text(&long);
        assert_eq!(kept.chars().count(), MAX_REMOTE_TEXT_CHARS + 1);
        assert!(kept.ends_with('…'));
    }

    proptest! {
        /// Whatever a relay sends, the logged text is one bounded line.
        #[test]
        fn remote_text_is_one_bounded_line(text in any::<String>()) {
            let kept = remote_text(&text);
            prop_assert!(!kept.contains('\n') && !kept.contains('\r'));
            // escape_debug turns one character into at most 10 (`\u{10ffff}`).
            prop_assert!(kept.chars().count() <= MAX_REMOTE_TEXT_CHARS * 10 + 1);
        }
    }
}
