//! Connection losses: nostr-sdk reports status changes only through its `Monitor` (the pool's
//! notification stream has no status variant). A change of an open connection
//! to `Disconnected`, `Terminated` or `Banned` becomes exactly one `Input::Disconnected`
//! (the routing table's open set guarantees "exactly one"). If the monitor stream lags, every
//! open connection's status is re-read instead of guessing.

use std::sync::Arc;

use nostr_sdk::pool::monitor::MonitorNotification;
use nostr_sdk::{Client, RelayStatus};
use sync_core::Input;
use tokio::sync::{broadcast, mpsc};

use crate::messages::DriverMsg;
use crate::routing::Routing;

pub(crate) fn is_down(status: RelayStatus) -> bool {
    matches!(
        status,
        RelayStatus::Disconnected | RelayStatus::Terminated | RelayStatus::Banned
    )
}

/// Reports a lost connection once; `false` when the driver is gone.
async fn lost(routing: &Routing, tx: &mpsc::Sender<DriverMsg>, sdk_url: &str) -> bool {
    let Some(relay) = routing.relay(sdk_url) else {
        return true;
    };
    if !routing.closed(sdk_url) {
        return true;
    }
    tracing::debug!(relay = %relay, "connection lost");
    tx.send(DriverMsg::Input(Input::Disconnected { relay }))
        .await
        .is_ok()
}

/// Follows the monitor until it or the driver ends.
pub(crate) async fn run(
    client: Client,
    routing: Arc<Routing>,
    tx: mpsc::Sender<DriverMsg>,
    mut statuses: broadcast::Receiver<MonitorNotification>,
) {
    loop {
        let keep_going = match statuses.recv().await {
            Ok(MonitorNotification::StatusChanged { relay_url, status }) => {
                !is_down(status) || lost(&routing, &tx, relay_url.as_str()).await
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let mut ok = true;
                for url in routing.open_urls() {
                    let down = match client.relay(url.as_str()).await {
                        Ok(relay) => is_down(relay.status()),
                        Err(_) => true,
                    };
                    if down {
                        ok &= lost(&routing, &tx, &url).await;
                    }
                }
                ok
            }
            Err(broadcast::error::RecvError::Closed) => false,
        };
        if !keep_going {
            return;
        }
    }
}
