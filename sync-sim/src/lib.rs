//! Placeholder: filled by the sync-sim issue.
