//! The `grasp-sync demo`: generated NIP-34 data, source relays, verification. Work in progress.
