//! The demo's source relays: one per behaviour (capping, restarted, without NIP-77, found only
//! through an announcement), the URL each is listed under, and what each holds.

use sync_runtime::demo::{Behaviour, Corpus, Holdings, SourceRelay};

/// The source relays and the URL each is listed under.
pub(crate) struct Sources {
    /// The relays, index = behaviour order.
    pub(crate) relays: Vec<SourceRelay>,
    /// The URL announcements list for each.
    pub(crate) urls: Vec<String>,
}

impl Sources {
    /// Every source's current holdings.
    pub(crate) async fn holdings(&self) -> Result<Vec<Holdings>, String> {
        let mut out = Vec::with_capacity(self.relays.len());
        for (relay, url) in self.relays.iter().zip(&self.urls) {
            let ids = relay.all_events().await?.iter().map(|e| e.id).collect();
            out.push(Holdings {
                url: url.clone(),
                behaviour: relay.behaviour.label().to_string(),
                ids,
            });
        }
        Ok(out)
    }
}

/// Starts one source per behaviour; returns them with their listed URLs.
pub(crate) async fn start_sources(count: usize) -> Result<Sources, String> {
    let mut relays = Vec::with_capacity(count);
    for index in 0..count {
        let relay = SourceRelay::start(Behaviour::for_index(index))
            .await
            .map_err(|e| format!("starting source relay {index}: {e}"))?;
        relays.push(relay);
    }
    let urls = relays.iter().map(SourceRelay::url).collect();
    Ok(Sources { relays, urls })
}

/// Stores every generated event on the relays it is placed on.
pub(crate) async fn fill_sources(sources: &Sources, corpus: &Corpus) -> Result<(), String> {
    for placed in &corpus.events {
        for &relay in &placed.relays {
            sources.relays[relay].seed([&placed.event]).await?;
        }
    }
    Ok(())
}
