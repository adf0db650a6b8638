//! The host's series: the `host_metrics` receiver's metrics that `collector-config.yaml` enables,
//! by scraper (cpu, load, memory, filesystem, network).

use super::{HOST, InfraMetric, Source};
use crate::catalogue::{Attribute, Kind};

const fn metric(
    scraper: &'static str,
    (name, unit, kind): (&'static str, &'static str, Kind),
    family: &'static str,
    labels: &'static [Attribute],
    help: &'static str,
    description: &'static str,
) -> InfraMetric {
    let metric_type = super::otel_metric_type(kind);
    InfraMetric {
        job: HOST,
        scraper: Some(scraper),
        source: Source::Otel { name, unit, kind },
        family,
        metric_type,
        labels,
        help,
        description,
    }
}

/// The network interface (after the config's exclusions: loopback, veth, docker and bridges).
const INTERFACE: Attribute = Attribute::bounded_by("device", "the host's network interfaces");
/// Receive or transmit.
const DIRECTION: Attribute = Attribute::one_of("direction", &["receive", "transmit"]);

pub(super) const CPU_TIME: InfraMetric = metric(
    "cpu",
    ("system.cpu.time", "s", Kind::Counter),
    "system_cpu_time_seconds_total",
    &[Attribute::one_of(
        "state",
        &["idle", "interrupt", "nice", "softirq", "steal", "system", "user", "wait"],
    )],
    "Total seconds each logical CPU spent on each mode.",
    "CPU seconds by mode, summed over every logical CPU (the per-CPU `cpu` attribute is opt-in \
     and off): its rate over `system_cpu_logical_count` is the host's CPU utilisation.",
);

pub(super) const CPU_LOGICAL_COUNT: InfraMetric = metric(
    "cpu",
    ("system.cpu.logical.count", "{cpu}", Kind::UpDownCounter),
    "system_cpu_logical_count",
    &[],
    "Number of available logical CPUs.",
    "Logical CPUs: what CPU time and load are divided by.",
);

pub(super) const LOAD_1M: InfraMetric = metric(
    "load",
    ("system.cpu.load_average.1m", "{thread}", Kind::Gauge),
    "system_cpu_load_average_1m",
    &[],
    "Average CPU Load over 1 minute.",
    "Load average over 1 minute: runnable and waiting threads, per CPU above 1 means queueing.",
);

pub(super) const LOAD_15M: InfraMetric = metric(
    "load",
    ("system.cpu.load_average.15m", "{thread}", Kind::Gauge),
    "system_cpu_load_average_15m",
    &[],
    "Average CPU Load over 15 minutes.",
    "Load average over 15 minutes: the trend under the 1-minute one.",
);

pub(super) const MEMORY_USAGE: InfraMetric = metric(
    "memory",
    ("system.memory.usage", "By", Kind::UpDownCounter),
    "system_memory_usage_bytes",
    &[Attribute::one_of(
        "state",
        &[
            "buffered",
            "cached",
            "inactive",
            "free",
            "slab_reclaimable",
            "slab_unreclaimable",
            "used",
        ],
    )],
    "Bytes of memory in use.",
    "Memory by state (Linux reports all but `inactive`): `used` over the limit is memory \
     pressure.",
);

pub(super) const MEMORY_LIMIT: InfraMetric = metric(
    "memory",
    ("system.memory.limit", "By", Kind::UpDownCounter),
    "system_memory_limit_bytes",
    &[],
    "Total bytes of memory available.",
    "The host's memory: what memory usage is measured against.",
);

pub(super) const FILESYSTEM_USAGE: InfraMetric = metric(
    "filesystem",
    ("system.filesystem.usage", "By", Kind::UpDownCounter),
    "system_filesystem_usage_bytes",
    &[
        Attribute::bounded_by("device", "the devices of the real filesystems mounted"),
        Attribute::bounded_by("mode", "the mount's mode, `rw` or `ro`"),
        Attribute::bounded_by("mountpoint", "the real filesystems' mount points"),
        Attribute::one_of("type", &["ext4", "xfs", "btrfs", "zfs", "ext3", "vfat"]),
        Attribute::one_of("state", &["free", "reserved", "used"]),
    ],
    "Filesystem bytes used.",
    "Bytes of each real filesystem (the config keeps ext4, xfs, btrfs, zfs, ext3 and vfat, not \
     pseudo, overlay or container mounts) by state: a disk filling up.",
);

pub(super) const NETWORK_IO: InfraMetric = metric(
    "network",
    ("system.network.io", "By", Kind::Counter),
    "system_network_io_bytes_total",
    &[INTERFACE, DIRECTION],
    "The number of bytes transmitted and received.",
    "Bytes through each network interface, by direction: the host's traffic.",
);

pub(super) const NETWORK_ERRORS: InfraMetric = metric(
    "network",
    ("system.network.errors", "{errors}", Kind::Counter),
    "system_network_errors_total",
    &[INTERFACE, DIRECTION],
    "The number of errors encountered.",
    "Errors on each network interface, by direction: any rate is worth a look.",
);
