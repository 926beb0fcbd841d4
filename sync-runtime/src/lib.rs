//! Placeholder: filled by the sync-runtime issue.
