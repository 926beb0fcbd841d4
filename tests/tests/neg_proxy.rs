//! [`NegProxy`] seen by a raw client: each mode answers `NEG-OPEN` (or stays silent), everything
//! else is forwarded, and stopping the proxy closes the connection.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use grasp_sync_tests::testkit::RawClient;
use sync_runtime::demo::server::Server;
use sync_runtime::demo::{NegMode, NegProxy};
use tokio_tungstenite::tungstenite::Message;

/// A raw upstream that echoes every text frame back, prefixed, so forwarding is visible.
async fn echo_upstream() -> Server {
    Server::start(|mut ws| async move {
        while let Some(Ok(Message::Text(text))) = ws.next().await {
            let echo = format!("[\"ECHO\",{}]", text.as_str());
            if ws.send(Message::text(echo)).await.is_err() {
                break;
            }
        }
    })
    .await
    .expect("upstream")
}

const NEG_OPEN: &str = r#"["NEG-OPEN","neg1",{"kinds":[1]},"6100"]"#;

#[tokio::test]
async fn each_mode_answers_neg_open_and_forwards_everything_else() {
    let upstream = echo_upstream().await;
    let quiet = Duration::from_millis(200);
    for (mode, expected) in [
        (
            NegMode::Notice,
            Some(r#"["NOTICE","ERROR: bad msg: unknown cmd"]"#),
        ),
        (
            NegMode::NegErr,
            Some(r#"["NEG-ERR","neg1","blocked: negentropy disabled"]"#),
        ),
        (NegMode::Silent, None),
    ] {
        let proxy = NegProxy::start(&upstream.url(), mode).await.expect("proxy");
        let mut client = RawClient::connect(&proxy.url()).await.expect("connect");
        client.send(NEG_OPEN).await.expect("send");
        assert_eq!(
            client.next_text(quiet).await.as_deref(),
            expected,
            "{mode:?}"
        );
        // The NEG-OPEN never reached the upstream: the next frame is the echo of the REQ.
        client.send(r#"["REQ","s",{}]"#).await.expect("send");
        let echoed = client.next_text(quiet).await;
        assert_eq!(
            echoed.as_deref(),
            Some(r#"["ECHO",["REQ","s",{}]]"#),
            "{mode:?}"
        );
        assert_eq!(proxy.neg_opens(), 1);
        // After stop the connection is gone.
        proxy.stop();
        assert!(
            client.closed_within(Duration::from_secs(2)).await,
            "{mode:?}"
        );
    }
}
