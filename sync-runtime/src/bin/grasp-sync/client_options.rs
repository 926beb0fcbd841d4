//! The limits on the relay's own clients: `--client-max-subscriptions`,
//! `--client-events-per-minute`, `--client-max-message-bytes`, `--client-max-connections`
//! (environment `GRASP_SYNC_CLIENT_*`, top-level keys `client_*` of the `--config` file), merged
//! flag > env > file > default and validated into a [`ClientLimits`].

use clap::Args;
use sync_runtime::demo::{ClientLimits, MAX_MESSAGE_BYTES_LIMIT};

use crate::config_file::FileConfig;

/// Smallest accepted `--client-max-message-bytes`: below it ordinary events are refused.
const MIN_MESSAGE_BYTES: usize = 1024;

/// The flags (clap merges flag > env; `None` = not given).
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Limits on the relay's clients (defaults in brackets)")]
pub(crate) struct ClientArgs {
    /// Open subscriptions (REQs) per client connection; a REQ for one more is answered
    /// CLOSED "rate-limited: too many REQs" [500].
    #[arg(
        long = "client-max-subscriptions",
        env = "GRASP_SYNC_CLIENT_MAX_SUBSCRIPTIONS",
        value_name = "N"
    )]
    pub(crate) client_max_subscriptions: Option<usize>,
    /// Events one client connection may publish per minute; more are answered OK false
    /// "rate-limited: slow down" [600].
    #[arg(
        long = "client-events-per-minute",
        env = "GRASP_SYNC_CLIENT_EVENTS_PER_MINUTE",
        value_name = "N"
    )]
    pub(crate) client_events_per_minute: Option<u32>,
    /// Largest client message in bytes (1024..=16777216); a larger one is answered with a
    /// NOTICE "invalid: message too large" and the connection stays open; one over 4x this
    /// closes the connection (WebSocket code 1009). Advertised in NIP-11 [524288].
    #[arg(
        long = "client-max-message-bytes",
        env = "GRASP_SYNC_CLIENT_MAX_MESSAGE_BYTES",
        value_name = "BYTES"
    )]
    pub(crate) client_max_message_bytes: Option<usize>,
    /// Simultaneous client connections to the relay; one more is answered HTTP 503 [1024].
    #[arg(
        long = "client-max-connections",
        env = "GRASP_SYNC_CLIENT_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub(crate) client_max_connections: Option<usize>,
}

/// Flags and env over the file over the defaults, validated; errors name the option.
pub(crate) fn merge(args: ClientArgs, file: &FileConfig) -> Result<ClientLimits, String> {
    let defaults = ClientLimits::default();
    let limits = ClientLimits {
        max_subscriptions: args
            .client_max_subscriptions
            .or(file.client_max_subscriptions)
            .unwrap_or(defaults.max_subscriptions),
        events_per_minute: args
            .client_events_per_minute
            .or(file.client_events_per_minute)
            .unwrap_or(defaults.events_per_minute),
        max_message_bytes: args
            .client_max_message_bytes
            .or(file.client_max_message_bytes)
            .unwrap_or(defaults.max_message_bytes),
        max_connections: args
            .client_max_connections
            .or(file.client_max_connections)
            .unwrap_or(defaults.max_connections),
    };
    let positive = [
        ("--client-max-subscriptions", limits.max_subscriptions),
        (
            "--client-events-per-minute",
            limits.events_per_minute as usize,
        ),
        ("--client-max-connections", limits.max_connections),
    ];
    if let Some((flag, _)) = positive.iter().find(|(_, value)| *value == 0) {
        return Err(format!("invalid {flag} 0: must be greater than 0"));
    }
    let bytes = limits.max_message_bytes;
    if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES_LIMIT).contains(&bytes) {
        return Err(format!(
            "invalid --client-max-message-bytes {bytes}: must be between {MIN_MESSAGE_BYTES} and {MAX_MESSAGE_BYTES_LIMIT}"
        ));
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_the_defaults() {
        let args = ClientArgs {
            client_max_subscriptions: Some(2),
            ..ClientArgs::default()
        };
        let file = crate::config_file::parse(
            "client_max_subscriptions = 9\nclient_max_message_bytes = 4096",
        )
        .expect("valid");
        let limits = merge(args, &file).expect("valid");
        assert_eq!(limits.max_subscriptions, 2);
        assert_eq!(limits.max_message_bytes, 4096);
        assert_eq!(limits.events_per_minute, 600);
        assert_eq!(limits.max_connections, 1024);
    }

    #[test]
    fn bad_values_name_their_flag() {
        let file = FileConfig::default();
        let cases = [
            (
                ClientArgs {
                    client_max_subscriptions: Some(0),
                    ..ClientArgs::default()
                },
                "--client-max-subscriptions",
            ),
            (
                ClientArgs {
                    client_events_per_minute: Some(0),
                    ..ClientArgs::default()
                },
                "--client-events-per-minute",
            ),
            (
                ClientArgs {
                    client_max_connections: Some(0),
                    ..ClientArgs::default()
                },
                "--client-max-connections",
            ),
            (
                ClientArgs {
                    client_max_message_bytes: Some(10),
                    ..ClientArgs::default()
                },
                "--client-max-message-bytes",
            ),
            (
                ClientArgs {
                    client_max_message_bytes: Some(64 << 20),
                    ..ClientArgs::default()
                },
                "--client-max-message-bytes",
            ),
        ];
        for (args, flag) in cases {
            let err = merge(args, &file).unwrap_err();
            assert!(err.contains(flag), "{err} should name {flag}");
        }
    }
}
