//! What a gauge's value is about, and so how the values of several instances of a service
//! combine: each instance's own (summed over instances, or shown one by one) or one shared thing
//! every instance reads alike (combined with `max`, never summed: two workers reading the same
//! queue depth from Postgres must not make it twice as deep). Counters and histograms count each
//! instance's own events and always add up. `docs/METRICS.md` lists the shared gauges, and
//! `xtask/tests/dashboards.rs` fails on any panel or rule that sums one over instances.

use super::{ALL, Instrument};

/// How the values of one instrument from several instances of a service combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A fact about the process that records it (its pool, memory, in-flight requests, events):
    /// instances add up, or are shown per instance.
    Instance,
    /// A fact about something every instance reads alike: each reports the same number, so the
    /// number is the `max` over instances, never their sum.
    Shared {
        /// What is read, by whom.
        what: &'static str,
        /// Shared only on the series whose attribute (key, value) is this; the others are the
        /// instance's own (the L1 cache is in the process, the L2 cache in Redis).
        only_when: Option<(&'static str, &'static str)>,
    },
}

impl Instrument {
    /// The same instrument, a reading of `what`, which every instance reads alike.
    pub const fn shared(self, what: &'static str) -> Self {
        Instrument { scope: Scope::Shared { what, only_when: None }, ..self }
    }

    /// The same instrument, a reading of `what` on the series whose attribute `key` is `value`
    /// (the instance's own on the others).
    pub const fn shared_when(
        self,
        what: &'static str,
        key: &'static str,
        value: &'static str,
    ) -> Self {
        Instrument { scope: Scope::Shared { what, only_when: Some((key, value)) }, ..self }
    }
}

/// The instruments that are (at least on some series) readings of a shared thing, in catalogue
/// order.
pub fn shared() -> impl Iterator<Item = &'static Instrument> {
    ALL.iter().copied().filter(|i| matches!(i.scope, Scope::Shared { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Kind;

    #[test]
    fn only_gauges_are_shared_and_only_on_values_they_take() {
        for i in shared() {
            assert!(
                matches!(i.kind, Kind::Gauge | Kind::UpDownCounter),
                "{}: a {:?} counts the instance's own events and cannot be shared",
                i.name,
                i.kind
            );
            if let Scope::Shared { what, only_when } = i.scope {
                assert!(!what.is_empty(), "{}: say what is shared", i.name);
                if let Some((key, value)) = only_when {
                    let attribute = i.attribute(key);
                    assert!(
                        attribute.is_some_and(|a| a.allows(value)),
                        "{}: {key}={value}",
                        i.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_queue_depth_is_shared_and_a_pool_is_not() {
        let names: Vec<&str> = shared().map(|i| i.name).collect();
        assert!(names.contains(&"orgraph.queue.jobs"), "{names:?}");
        assert!(!names.contains(&"db.client.connection.count"), "{names:?}");
    }
}
