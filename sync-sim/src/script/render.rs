//! Rendering a scripted run as a readable table: times relative to the start, aliases or
//! `#tail` abbreviations instead of hex, filters' `since`/`until` relative to now.

use nostr::Filter;
use sync_core::{Command, Input, NegentropyResult};

use super::World;

impl World {
    pub(super) fn short(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (hex, alias) in &self.aliases {
            out = out.replace(hex.as_str(), alias);
        }
        // Any remaining 64-hex run: abbreviate.
        let bytes: Vec<char> = out.chars().collect();
        let mut res = String::new();
        let mut i = 0;
        while i < bytes.len() {
            if i + 64 <= bytes.len() && bytes[i..i + 64].iter().all(|c| c.is_ascii_hexdigit()) {
                let s: String = bytes[i + 56..i + 64].iter().collect();
                res.push_str(&format!("#{}", s.trim_start_matches('0')));
                i += 64;
            } else {
                res.push(bytes[i]);
                i += 1;
            }
        }
        res
    }

    fn rel_time(&self, secs: u64) -> String {
        let d = secs as i64 - self.now.wall.as_secs() as i64;
        format!("now{d:+}s")
    }

    fn render_filter(&self, f: &Filter) -> String {
        let mut f = f.clone();
        let since = f
            .since
            .take()
            .map(|t| format!(" since={}", self.rel_time(t.as_secs())));
        let until = f
            .until
            .take()
            .map(|t| format!(" until={}", self.rel_time(t.as_secs())));
        let ids = f.ids.take().map(|ids| format!(" ids×{}", ids.len()));
        let json = serde_json::to_string(&f).expect("json");
        self.short(&format!(
            "{json}{}{}{}",
            ids.unwrap_or_default(),
            since.unwrap_or_default(),
            until.unwrap_or_default()
        ))
    }

    pub(super) fn render_input(&self, input: &Input) -> String {
        let s = match input {
            Input::Accepted { event } => {
                format!("Accepted {} k{}", event.id.to_hex(), event.kind.as_u16())
            }
            Input::Rejected { event } => format!("Rejected {}", event.id.to_hex()),
            Input::RegisterRepo {
                coord,
                relays,
                level,
            } => format!("RegisterRepo {coord} {relays:?} {level:?}"),
            Input::WithdrawRepo { coord } => format!("WithdrawRepo {coord}"),
            Input::Connected { relay } => format!("Connected {relay}"),
            Input::ConnectFailed { relay, error } => format!("ConnectFailed {relay} {error:?}"),
            Input::ConnectRefused { relay, address } => {
                format!("ConnectRefused {relay} {}", address.label())
            }
            Input::Disconnected { relay } => format!("Disconnected {relay}"),
            Input::Delivered {
                relay,
                sub,
                event,
                outcome,
            } => format!("Delivered {relay} {sub} {} {outcome:?}", event.id.to_hex()),
            Input::Eose { relay, sub } => format!("Eose {relay} {sub}"),
            Input::Closed {
                relay,
                sub,
                message,
            } => format!("Closed {relay} {sub} {message:?}"),
            Input::SendFailed { relay, sub, error } => {
                format!("SendFailed {relay} {sub} {error:?}")
            }
            Input::Notice { relay, message } => format!("Notice {relay} {message:?}"),
            Input::RelayInfo { relay, limits } => format!("RelayInfo {relay} {limits:?}"),
            Input::NegentropyDiff { relay, sub, result } => match result {
                NegentropyResult::Missing { ids } => {
                    format!("NegDiff {relay} {sub} missing×{}", ids.len())
                }
                other => format!("NegDiff {relay} {sub} {other:?}"),
            },
            Input::Lagged { relay } => format!("Lagged {relay:?}"),
            Input::RestoreRejected { entries } => format!("RestoreRejected ×{}", entries.len()),
            Input::RestoreCursors { cursors } => {
                format!("RestoreCursors ×{}", cursors.relays.len())
            }
            Input::Tick => "Tick".to_string(),
        };
        self.short(&s)
    }

    fn render_command(&self, c: &Command) -> String {
        let s = match c {
            Command::Connect { relay } => format!("Connect {relay}"),
            Command::Disconnect { relay } => format!("Disconnect {relay}"),
            Command::Subscribe {
                relay,
                sub,
                kind,
                filters,
            } => {
                let fs: Vec<String> = filters.iter().map(|f| self.render_filter(f)).collect();
                format!("Subscribe {relay} {sub} {kind:?} [{}]", fs.join(", "))
            }
            Command::Unsubscribe { relay, sub, .. } => format!("Unsubscribe {relay} {sub}"),
            Command::NegentropyDiff { relay, sub, filter } => {
                format!("NegDiff {relay} {sub} {}", self.render_filter(filter))
            }
            Command::Forget { relay } => format!("Forget {relay}"),
            Command::Reoffer { ids } => format!(
                "Reoffer {:?}",
                ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>()
            ),
        };
        self.short(&s)
    }

    pub(super) fn log(&mut self, input: &str, commands: &[Command]) {
        if !self.record {
            return;
        }
        let t = self.now.mono.0;
        let time = if t.is_multiple_of(1000) {
            format!("+{}s", t / 1000)
        } else {
            format!("+{}.{:03}s", t / 1000, t % 1000)
        };
        let status: Vec<String> = self
            .core
            .relay_status()
            .map(|v| format!("{}={:?}", self.short(v.url().as_str()), v.status()))
            .collect();
        let mut line = format!("{time:>10}  {input}");
        if commands.is_empty() {
            line.push_str("  → ·");
        }
        for c in commands {
            line.push_str(&format!("\n{:>12}→ {}", "", self.render_command(c)));
        }
        line.push_str(&format!("\n{:>12}  [{}]", "", status.join(" ")));
        self.lines.push(line);
    }
}
