//! The request mix: six kinds of request and their relative weights, as `--mix` spells them
//! (`reads=60,updates=15,analysis=2,exports=3,interventions=5,bad=15`).

use rand::Rng;
use std::fmt;

/// A kind of request the load generator sends; [`super::scenario`] says what each one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Graph statistics, pages of employees, one employee, jobs this run created.
    Reads,
    /// Adding employees and relations, and removing the ones this run added.
    Updates,
    /// Starting a causal analysis.
    Analysis,
    /// Starting an export (csv or jsonl).
    Exports,
    /// Proposing a reassignment, executing it, following it, rolling it back.
    Interventions,
    /// Requests the API must refuse with a 4xx.
    Bad,
}

impl Kind {
    /// Every kind, in `--mix` order.
    pub const ALL: [Kind; 6] =
        [Kind::Reads, Kind::Updates, Kind::Analysis, Kind::Exports, Kind::Interventions, Kind::Bad];

    /// The name `--mix` and the report use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Reads => "reads",
            Kind::Updates => "updates",
            Kind::Analysis => "analysis",
            Kind::Exports => "exports",
            Kind::Interventions => "interventions",
            Kind::Bad => "bad",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Reads => 0,
            Kind::Updates => 1,
            Kind::Analysis => 2,
            Kind::Exports => 3,
            Kind::Interventions => 4,
            Kind::Bad => 5,
        }
    }
}

/// The default `--mix`.
pub const DEFAULT_MIX: &str = "reads=60,updates=15,analysis=2,exports=3,interventions=5,bad=15";

/// The largest weight one kind may have.
const MAX_WEIGHT: u32 = 1_000_000;

/// Relative weights of the kinds; a kind left out of `--mix` has weight 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 6],
}

impl Default for Mix {
    /// [`DEFAULT_MIX`].
    fn default() -> Self {
        Mix { weights: [60, 15, 2, 3, 5, 15] }
    }
}

impl Mix {
    /// Parses `name=weight,…`. Names are [`Kind::name`]s, each at most once; weights are whole
    /// numbers; at least one must be above 0.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 6];
        let mut seen = [false; 6];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=weight (e.g. reads=60)"))?;
            let (name, weight) = (name.trim(), weight.trim());
            let kind = Kind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown request kind `{name}` (known: {})", known.join(", "))
            })?;
            let weight: u32 =
                weight.parse().ok().filter(|w| *w <= MAX_WEIGHT).ok_or_else(|| {
                    format!("weight of {name} must be 0 to {MAX_WEIGHT}, not `{weight}`")
                })?;
            if std::mem::replace(&mut seen[kind.index()], true) {
                return Err(format!("{name} is given twice"));
            }
            weights[kind.index()] = weight;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err(format!("no kind has a weight above 0 (e.g. {DEFAULT_MIX})"));
        }
        Ok(Mix { weights })
    }

    /// The weight of `kind`.
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights[kind.index()]
    }

    /// A kind drawn with probability proportional to its weight.
    pub fn pick(&self, rng: &mut impl Rng) -> Kind {
        let total: u64 = self.weights.iter().map(|w| u64::from(*w)).sum();
        let mut ticket = rng.random_range(0..total.max(1));
        for kind in Kind::ALL {
            let weight = u64::from(self.weight(kind));
            if ticket < weight {
                return kind;
            }
            ticket -= weight;
        }
        Kind::Reads
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Kind::ALL
            .into_iter()
            .filter(|k| self.weight(*k) > 0)
            .map(|k| format!("{}={}", k.name(), self.weight(k)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_default_is_the_documented_string() {
        assert_eq!(Mix::parse(DEFAULT_MIX).unwrap(), Mix::default());
        assert_eq!(Mix::default().to_string(), DEFAULT_MIX);
    }

    #[test]
    fn left_out_kinds_weigh_nothing() {
        let mix = Mix::parse(" reads = 3 , bad=1,").unwrap();
        assert_eq!(mix.to_string(), "reads=3,bad=1");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0u32; 6];
        for _ in 0..4000 {
            counts[mix.pick(&mut rng).index()] += 1;
        }
        assert_eq!(counts[1..5], [0, 0, 0, 0]);
        assert!((2800..3200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("reads", "name=weight"),
            ("writes=3", "unknown request kind `writes`"),
            ("reads=-1", "weight of reads"),
            ("reads=1,reads=2", "twice"),
            ("reads=0", "no kind"),
            ("", "no kind"),
        ] {
            let err = Mix::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
