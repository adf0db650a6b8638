//! The trace settings of [`crate::Config`], from the standard variables: which traces are kept
//! (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`) and how finished spans are queued for export
//! (`OTEL_BSP_*`).
//!
//! The SDK reads these variables itself too, but falls back to its defaults in silence on a value
//! it cannot use; here a bad value is a [`ConfigError`] naming the variable, and the parsed
//! values are handed to the SDK explicitly.

use crate::config::ConfigError;
use crate::settings::{SettingError, Settings};
use std::time::Duration;

/// Which traces are recorded and exported (`OTEL_TRACES_SAMPLER`, with `OTEL_TRACES_SAMPLER_ARG`
/// as the ratio of the `*traceidratio` samplers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampler {
    /// `always_on`: every trace, whatever the caller decided.
    AlwaysOn,
    /// `always_off`: none.
    AlwaysOff,
    /// `traceidratio`: this fraction of traces (by trace id), whatever the caller decided.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default): the caller's decision when a request carries one,
    /// otherwise every trace.
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: the caller's decision, otherwise none.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: the caller's decision, otherwise this fraction.
    ParentBasedTraceIdRatio(f64),
}

/// The values `OTEL_TRACES_SAMPLER` accepts.
const SAMPLERS: &str = "`always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, \
                        `parentbased_always_off` or `parentbased_traceidratio`";

impl TraceSampler {
    /// The SDK sampler this stands for.
    pub fn sdk(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler;
        match self {
            TraceSampler::AlwaysOn => Sampler::AlwaysOn,
            TraceSampler::AlwaysOff => Sampler::AlwaysOff,
            TraceSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
            TraceSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            TraceSampler::ParentBasedAlwaysOff => {
                Sampler::ParentBased(Box::new(Sampler::AlwaysOff))
            }
            TraceSampler::ParentBasedTraceIdRatio(ratio) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
            }
        }
    }

    pub(crate) fn read(s: &Settings<'_>) -> Result<TraceSampler, ConfigError> {
        // Read (and checked) even when the sampler takes no argument: a typo is a typo.
        let ratio = read_ratio(s)?;
        Ok(match s.get_or("OTEL_TRACES_SAMPLER", "parentbased_always_on").as_deref() {
            None | Some("parentbased_always_on") => TraceSampler::ParentBasedAlwaysOn,
            Some("always_on") => TraceSampler::AlwaysOn,
            Some("always_off") => TraceSampler::AlwaysOff,
            Some("traceidratio") => TraceSampler::TraceIdRatio(ratio),
            Some("parentbased_always_off") => TraceSampler::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => TraceSampler::ParentBasedTraceIdRatio(ratio),
            Some(other) => {
                return Err(SettingError::new(
                    "OTEL_TRACES_SAMPLER",
                    other,
                    format!("expected {SAMPLERS}"),
                ));
            }
        })
    }
}

fn read_ratio(s: &Settings<'_>) -> Result<f64, ConfigError> {
    const VAR: &str = "OTEL_TRACES_SAMPLER_ARG";
    match s.get_or(VAR, 1.0) {
        None => Ok(1.0),
        Some(v) => match v.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            _ => Err(SettingError::new(VAR, v, "expected a ratio from 0 to 1, e.g. 0.25")),
        },
    }
}

/// How finished spans wait for export (`OTEL_BSP_*`, the spec's defaults). The queue is bounded:
/// a span that finds it full is dropped and counted, never waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanBatch {
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans that may wait for export (default 2048).
    pub max_queue_size: usize,
    /// `OTEL_BSP_SCHEDULE_DELAY` (ms): time between two exports (default 5000).
    pub schedule_delay: Duration,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans per export, at most the queue size (default 512).
    pub max_export_batch_size: usize,
    /// `OTEL_BSP_EXPORT_TIMEOUT` (ms): the bound of one export (default 30000); with
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, the lesser wins.
    pub export_timeout: Duration,
}

impl Default for SpanBatch {
    fn default() -> Self {
        SpanBatch {
            max_queue_size: 2048,
            schedule_delay: Duration::from_millis(5000),
            max_export_batch_size: 512,
            export_timeout: Duration::from_millis(30_000),
        }
    }
}

impl SpanBatch {
    pub(crate) fn read(s: &Settings<'_>) -> Result<SpanBatch, ConfigError> {
        let d = SpanBatch::default();
        let max_queue_size = s.positive("OTEL_BSP_MAX_QUEUE_SIZE", d.max_queue_size as u32)?;
        let schedule_delay =
            s.millis("OTEL_BSP_SCHEDULE_DELAY", d.schedule_delay.as_millis() as u64)?;
        let max_export_batch_size =
            s.positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", d.max_export_batch_size as u32)?;
        let export_timeout =
            s.millis("OTEL_BSP_EXPORT_TIMEOUT", d.export_timeout.as_millis() as u64)?;
        if max_export_batch_size > max_queue_size {
            return Err(SettingError::new(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                max_export_batch_size.to_string(),
                format!("must not exceed OTEL_BSP_MAX_QUEUE_SIZE ({max_queue_size})"),
            ));
        }
        Ok(SpanBatch {
            max_queue_size: max_queue_size as usize,
            schedule_delay,
            max_export_batch_size: max_export_batch_size as usize,
            export_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::settings::FromEnv;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| vars.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string()))
    }

    fn sampler(vars: &[(&str, &str)]) -> TraceSampler {
        parse(vars).expect("valid").sampler
    }

    #[test]
    fn the_default_sampler_is_parent_based_always_on() {
        assert_eq!(sampler(&[]), TraceSampler::ParentBasedAlwaysOn);
        assert_eq!(parse(&[]).expect("valid").span_batch, SpanBatch::default());
    }

    #[test]
    fn every_standard_sampler_is_read_with_its_ratio() {
        let cases = [
            ("always_on", TraceSampler::AlwaysOn),
            ("always_off", TraceSampler::AlwaysOff),
            ("traceidratio", TraceSampler::TraceIdRatio(0.25)),
            ("parentbased_always_on", TraceSampler::ParentBasedAlwaysOn),
            ("parentbased_always_off", TraceSampler::ParentBasedAlwaysOff),
            ("parentbased_traceidratio", TraceSampler::ParentBasedTraceIdRatio(0.25)),
        ];
        for (name, expected) in cases {
            let got =
                sampler(&[("OTEL_TRACES_SAMPLER", name), ("OTEL_TRACES_SAMPLER_ARG", "0.25")]);
            assert_eq!(got, expected, "{name}");
        }
        // Without an argument the ratio is 1; the bounds themselves are allowed.
        assert_eq!(
            sampler(&[("OTEL_TRACES_SAMPLER", "traceidratio")]),
            TraceSampler::TraceIdRatio(1.0)
        );
        for bound in ["0", "1", "0.0", "1.0"] {
            let got = sampler(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", bound),
            ]);
            assert!(matches!(got, TraceSampler::ParentBasedTraceIdRatio(_)), "{bound}");
        }
    }

    #[test]
    fn bad_sampler_settings_name_their_variable() {
        let cases = [
            ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
            ("OTEL_TRACES_SAMPLER", "parentbased_jaeger_remote"),
            ("OTEL_TRACES_SAMPLER", "AlwaysOn"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER_ARG", "-0.1"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
            ("OTEL_TRACES_SAMPLER_ARG", "NaN"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "many"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
        ];
        for (variable, value) in cases {
            let err = parse(&[(variable, value)]).expect_err(value);
            assert_eq!(err.variable, variable, "{value}");
            assert!(err.to_string().starts_with(variable), "{err}");
        }
        let err = parse(&[("OTEL_TRACES_SAMPLER", "jaeger_remote")]).expect_err("unsupported");
        assert!(
            err.to_string().contains("parentbased_traceidratio"),
            "says what is supported: {err}"
        );
    }

    #[test]
    fn batch_settings_are_read() {
        let c = parse(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "2000"),
        ])
        .expect("valid");
        assert_eq!(
            c.span_batch,
            SpanBatch {
                max_queue_size: 100,
                schedule_delay: Duration::from_millis(250),
                max_export_batch_size: 100,
                export_timeout: Duration::from_secs(2),
            }
        );
    }
}
