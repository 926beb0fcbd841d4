//! Dialing remote relays under the open-network rules (docs/spec.md §13).
//!
//! Every connection the runtime opens to a remote relay goes through [`AddressRules`]: the
//! WebSocket through [`Dialer::connect`], the NIP-11 request and each redirect it follows
//! through the NIP-11 client's resolver and redirect policy (`nip11.rs`). The host is resolved
//! once, every address it resolves to is classified (`sync_core::classify_ip`), and unless the
//! host is trusted or the lab switch is on, a host with any non-global address is refused
//! without a packet sent to it. The socket is then opened to one of the checked addresses, so
//! a second resolution (DNS rebinding) cannot switch the target after the check.
//!
//! Trusted hosts are those of relays the operator named (bootstrap relays). The core already
//! refuses literal non-global hosts from events before a `Connect`; this is the same rule
//! applied to what names resolve to, and a second line for literals.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sync_core::{classify_ip, NonGlobal, RelayUrl};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Refusals waiting for the executor are forgotten beyond this many (bounded memory).
const MAX_PENDING_REFUSALS: usize = 4_096;

/// Why a dial did not produce a socket.
#[derive(Debug)]
pub(crate) enum DialError {
    /// The host resolves to a non-global address and is not trusted.
    Refused {
        /// The host as written in the URL.
        host: String,
        /// The first non-global address it resolved to.
        addr: IpAddr,
        /// Its class.
        class: NonGlobal,
    },
    /// The name did not resolve (the text keeps the resolver's words, so the core files it
    /// as a DNS failure).
    Resolve(std::io::Error),
    /// No checked address accepted the connection.
    Connect(std::io::Error),
    /// Resolution and connection together took longer than allowed.
    TimedOut,
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { host, addr, class } => write!(
                f,
                "refused by the open-network rules: {host} resolves to {addr} ({})",
                class.label()
            ),
            Self::Resolve(e) => write!(f, "failed to lookup address information: {e}"),
            Self::Connect(e) => write!(f, "{e}"),
            Self::TimedOut => f.write_str("connection timeout"),
        }
    }
}

impl std::error::Error for DialError {}

/// The open-network rules of one process: which `host:port` may resolve to non-global
/// addresses. Shared by the [`Dialer`] and the NIP-11 client's resolver and redirect policy.
#[derive(Debug, Default)]
pub(crate) struct AddressRules {
    /// The lab switch: non-global addresses allowed everywhere.
    allow_private: bool,
    /// `(host, port)` (host as `RelayUrl::host` writes it) of operator-named relays: never
    /// refused.
    trusted: BTreeSet<(String, u16)>,
}

impl AddressRules {
    /// Whether `host:port` may resolve to non-global addresses.
    pub(crate) fn trusts(&self, host: &str, port: u16) -> bool {
        self.allow_private || self.trusted.contains(&(host.to_ascii_lowercase(), port))
    }

    /// The literal IP address `host` writes (IPv6 in brackets or not), if it is one.
    pub(crate) fn literal_ip(host: &str) -> Option<IpAddr> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        bare.parse().ok()
    }

    /// Refuses `addrs` (what `host:port` resolved to) if any is non-global and the host is
    /// not trusted.
    pub(crate) fn check(
        &self,
        host: &str,
        port: u16,
        addrs: &[SocketAddr],
    ) -> Result<(), DialError> {
        if self.trusts(host, port) {
            return Ok(());
        }
        match addrs
            .iter()
            .find_map(|a| classify_ip(a.ip()).map(|c| (a.ip(), c)))
        {
            Some((addr, class)) => Err(DialError::Refused {
                host: host.to_string(),
                addr,
                class,
            }),
            None => Ok(()),
        }
    }

    /// The addresses `host:port` resolves to (once), each checked unless the host is trusted.
    /// `host` is a URL host (IPv6 in brackets).
    pub(crate) async fn resolve_checked(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, DialError> {
        let addrs: Vec<SocketAddr> = match Self::literal_ip(host) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(DialError::Resolve)?
                .collect(),
        };
        self.check(host, port, &addrs)?;
        Ok(addrs)
    }
}

/// Opens TCP connections to remote relays under the open-network rules. Shared by the
/// WebSocket transport and the NIP-11 fetch.
#[derive(Debug, Default)]
pub(crate) struct Dialer {
    /// Which hosts may resolve to non-global addresses.
    rules: Arc<AddressRules>,
    /// Refusals the transport made, by canonical relay URL, until the executor reports them
    /// to the core. Invariant: at most `MAX_PENDING_REFUSALS` entries.
    refused: Mutex<BTreeMap<String, NonGlobal>>,
}

impl Dialer {
    /// A dialer trusting the host and port of each of `trusted` (operator-named relays), and
    /// everything when `allow_private` is set.
    pub(crate) fn new<'a>(
        allow_private: bool,
        trusted: impl IntoIterator<Item = &'a str>,
    ) -> Arc<Self> {
        let trusted = trusted
            .into_iter()
            .filter_map(RelayUrl::parse)
            .map(|u| (u.host().to_string(), u.port()))
            .collect();
        Arc::new(Self {
            rules: Arc::new(AddressRules {
                allow_private,
                trusted,
            }),
            refused: Mutex::default(),
        })
    }

    /// The rules this dialer applies.
    pub(crate) fn rules(&self) -> &Arc<AddressRules> {
        &self.rules
    }

    /// Resolves `host` once, checks every address, and connects (with `TCP_NODELAY`) to the
    /// first checked address that answers, all within `timeout`. `host` is a URL host (IPv6
    /// in brackets).
    pub(crate) async fn connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<TcpStream, DialError> {
        let work = async {
            let addrs = self.rules.resolve_checked(host, port).await?;
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        // Best effort: a socket without it works, only slower.
                        let _nodelay = stream.set_nodelay(true);
                        return Ok(stream);
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(DialError::Connect(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
            })))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| DialError::TimedOut)?
    }

    /// Notes that dialing `relay` was refused, for [`Dialer::take_refusal`].
    pub(crate) fn note_refusal(&self, relay: &str, class: NonGlobal) {
        let mut map = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_PENDING_REFUSALS {
            map.clear();
        }
        map.insert(relay.to_string(), class);
    }

    /// The refusal noted for `relay` since the last call, if its last dial was refused.
    pub(crate) fn take_refusal(&self, relay: &str) -> Option<NonGlobal> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(relay)
    }
}

/// One TLS client configuration for the process (ring provider, webpki roots), for the
/// WebSocket transport and NIP-11 alike.
pub(crate) fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_or_else(
                    |_| rustls::ClientConfig::builder().with_root_certificates(roots.clone()),
                    |b| b.with_root_certificates(roots.clone()),
                )
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn listener(ip: &str) -> (tokio::net::TcpListener, u16) {
        let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    #[tokio::test]
    async fn non_global_hosts_are_refused_without_a_connection() {
        let (l, port) = listener("127.0.0.1").await;
        let dialer = Dialer::new(false, []);
        for host in ["127.0.0.1", "localhost"] {
            let err = dialer
                .connect(host, port, Duration::from_secs(2))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    DialError::Refused {
                        class: NonGlobal::Loopback,
                        ..
                    }
                ),
                "{host}: {err}"
            );
        }
        // Nothing reached the listener.
        let accepted = tokio::time::timeout(Duration::from_millis(100), l.accept()).await;
        assert!(accepted.is_err(), "no connection was made");
    }

    #[tokio::test]
    async fn trusted_hosts_and_the_lab_switch_connect() {
        let (l, port) = listener("127.0.0.1").await;
        let trusted = Dialer::new(false, [format!("ws://127.0.0.1:{port}").as_str()]);
        let _stream = trusted
            .connect("127.0.0.1", port, Duration::from_secs(2))
            .await
            .unwrap();
        let _accepted = l.accept().await.unwrap();
        let lab = Dialer::new(true, []);
        let _stream = lab
            .connect("localhost", port, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(lab.rules().trusts("10.0.0.1", 80));
        assert!(
            !trusted.rules().trusts("127.0.0.2", port),
            "trust is per host"
        );
        assert!(
            !trusted.rules().trusts("127.0.0.1", port + 1),
            "and per port"
        );
    }

    #[test]
    fn refusals_wait_for_the_executor_once() {
        let dialer = Dialer::new(false, []);
        dialer.note_refusal("wss://x", NonGlobal::Private);
        assert_eq!(dialer.take_refusal("wss://x"), Some(NonGlobal::Private));
        assert_eq!(dialer.take_refusal("wss://x"), None);
    }
}
