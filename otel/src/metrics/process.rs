//! Process metrics (semantic conventions `process.*`): CPU time, memory, threads and uptime,
//! read from `/proc/self` at each collection. On other systems only uptime is reported.

use crate::catalogue::{self, CpuMode, Label};
use opentelemetry::metrics::{Meter, ObservableCounter, ObservableGauge, ObservableUpDownCounter};
use std::time::Instant;

/// The process instruments; keep it alive as long as the meter provider.
pub struct ProcessMetrics {
    _cpu: ObservableCounter<f64>,
    _memory: [ObservableUpDownCounter<i64>; 3],
    _uptime: ObservableGauge<f64>,
}

/// What `/proc/self/stat` says, in the catalogue's units.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    user_secs: f64,
    system_secs: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    threads: i64,
}

impl ProcessMetrics {
    /// Registers the process instruments on `meter`. Uptime counts from this call, so make it
    /// at start-up.
    pub fn new(meter: &Meter) -> Self {
        let started = Instant::now();
        let cpu = catalogue::PROCESS_CPU_TIME.f64_observable_counter(meter, |observer| {
            if let Some(s) = sample() {
                observer.observe(s.user_secs, &[CpuMode::User.key_value()]);
                observer.observe(s.system_secs, &[CpuMode::System.key_value()]);
            }
        });
        let observe = |instrument: &catalogue::Instrument, read: fn(&Sample) -> i64| {
            instrument.i64_observable_up_down_counter(meter, move |observer| {
                if let Some(s) = sample() {
                    observer.observe(read(&s), &[]);
                }
            })
        };
        let memory = [
            observe(&catalogue::PROCESS_MEMORY_USAGE, |s| s.resident_bytes),
            observe(&catalogue::PROCESS_MEMORY_VIRTUAL, |s| s.virtual_bytes),
            observe(&catalogue::PROCESS_THREAD_COUNT, |s| s.threads),
        ];
        let uptime = catalogue::PROCESS_UPTIME.f64_observable_gauge(meter, move |observer| {
            observer.observe(started.elapsed().as_secs_f64(), &[]);
        });
        ProcessMetrics { _cpu: cpu, _memory: memory, _uptime: uptime }
    }
}

#[cfg(target_os = "linux")]
fn sample() -> Option<Sample> {
    // A failed read skips this collection's process points rather than reporting zeros.
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Some(Sample {
        user_secs: stat.utime as f64 / ticks,
        system_secs: stat.stime as f64 / ticks,
        resident_bytes: clamp(stat.rss.saturating_mul(procfs::page_size())),
        virtual_bytes: clamp(stat.vsize),
        threads: stat.num_threads,
    })
}

#[cfg(not(target_os = "linux"))]
fn sample() -> Option<Sample> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn reports_real_process_numbers() {
        let recorder = Recorder::new();
        let _process = ProcessMetrics::new(recorder.meter());
        // Burn a little CPU so user time is visibly above zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let points = recorder.collect();
        points.assert_conforms();
        assert!(points.value("process.memory.usage", &[]) > 1_000_000.0, "RSS above 1 MB");
        assert!(
            points.value("process.memory.virtual", &[])
                >= points.value("process.memory.usage", &[])
        );
        assert!(points.value("process.thread.count", &[]) >= 1.0);
        assert!(points.value("process.cpu.time", &[("cpu.mode", "user")]) > 0.0);
        assert!(points.value("process.uptime", &[]) >= 0.0);
    }
}
