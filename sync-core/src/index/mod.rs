//! The three indexes (docs/spec.md §6): what we want per repository ([`want`]), what is in flight per
//! relay ([`pending`]) and what each relay has confirmed ([`confirmed`]).

pub(crate) mod confirmed;
pub(crate) mod keyset;
pub(crate) mod pending;
pub(crate) mod plus;
pub(crate) mod want;
