//! Placeholder; the messaging spans are written on another branch.
