//! The default GRASP write policy (see the README). Work in progress.
