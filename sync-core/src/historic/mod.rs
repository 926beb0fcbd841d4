//! The historic sync engine (docs/spec.md §7): a [`batch::Batch`] per unit of work, negentropy first
//! ([`negentropy`]), REQ+EOSE with [`pagination`] as the fallback, deadlines for everything.

pub(crate) mod batch;
pub(crate) mod claims;
pub(crate) mod engine;
pub mod negentropy;
pub(crate) mod negentropy_stage;
pub(crate) mod pages;
pub mod pagination;
pub(crate) mod retry;
