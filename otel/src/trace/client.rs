//! Placeholder; the client spans are written on another branch.
