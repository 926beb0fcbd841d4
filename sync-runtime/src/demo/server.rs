//! A loopback WebSocket server skeleton shared by [`NegProxy`](super::NegProxy) and the test
//! kit's hostile relay (the workspace's `tests` crate): binds `127.0.0.1:0` with
//! `TCP_NODELAY`, upgrades every connection and hands it to a session function. Stopping (or
//! dropping) the server aborts the listener and every session at once, so a test gets a
//! deterministic disconnect.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::WebSocketStream;

/// An accepted, upgraded client connection.
pub type ServerSocket = WebSocketStream<TcpStream>;

/// A running loopback server. Invariant: while `task` runs, `addr` accepts connections.
#[derive(Debug)]
pub struct Server {
    /// The bound address.
    addr: SocketAddr,
    /// The accept loop; it owns the sessions (a `JoinSet`), so aborting it ends them all.
    /// `None` once stopped.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves every upgraded connection with `session`.
    ///
    /// # Errors
    /// If no loopback port can be bound.
    pub async fn start<F, Fut>(session: F) -> io::Result<Self>
    where
        F: Fn(ServerSocket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let session = Arc::new(session);
        let task = tokio::spawn(async move {
            let mut sessions = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _peer)) = accepted else { continue };
                        let session = session.clone();
                        sessions.spawn(async move {
                            // Best effort: a socket that cannot disable Nagle still works.
                            let _nagle = stream.set_nodelay(true);
                            if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                                session(ws).await;
                            }
                        });
                    }
                    // Reap finished sessions so the set stays as large as the live ones.
                    Some(_done) = sessions.join_next(), if !sessions.is_empty() => {}
                }
            }
        });
        Ok(Self {
            addr,
            task: Mutex::new(Some(task)),
        })
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Closes the listener and every session (TCP closed without a close frame). Idempotent.
    pub fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
