//! The OpenTelemetry resource: who is emitting.
//!
//! The collector's `prometheus` exporter turns `service.namespace`/`service.name` into the `job`
//! label and `service.instance.id` into `instance`, and puts every other attribute on
//! `target_info`. The Rust SDK never sets `service.instance.id`, and without it there is neither
//! an `instance` label nor a `target_info`, so it is always set here (a fresh UUID per process
//! unless `OTEL_RESOURCE_ATTRIBUTES` gives one).

use crate::Config;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_semantic_conventions::resource as semconv;

/// The project's namespace: `job` is `orgraph/<service>` unless `OTEL_RESOURCE_ATTRIBUTES` says
/// otherwise.
pub const DEFAULT_NAMESPACE: &str = "orgraph";
/// `deployment.environment.name` when none is configured.
pub const DEFAULT_ENVIRONMENT: &str = "development";

/// What a service says about itself; [`crate::service_info!`] fills it from the crate manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `service.name` unless `OTEL_SERVICE_NAME` overrides it.
    pub name: &'static str,
    /// `service.version`.
    pub version: &'static str,
}

/// The calling crate's [`ServiceInfo`]: its package name and version.
#[macro_export]
macro_rules! service_info {
    () => {
        $crate::ServiceInfo { name: env!("CARGO_PKG_NAME"), version: env!("CARGO_PKG_VERSION") }
    };
}

/// Builds the resource. Precedence for `service.name`: `OTEL_SERVICE_NAME`, then `service.name`
/// in `OTEL_RESOURCE_ATTRIBUTES`, then `service.name` of `info`. Other attributes from
/// `OTEL_RESOURCE_ATTRIBUTES` override the detected ones.
pub fn build_resource(config: &Config, info: &ServiceInfo) -> Resource {
    let service_name = config
        .service_name
        .clone()
        .or_else(|| config.resource_attribute(semconv::SERVICE_NAME).map(String::from))
        .unwrap_or_else(|| info.name.to_string());
    let detected = [
        KeyValue::new(semconv::SERVICE_NAMESPACE, DEFAULT_NAMESPACE),
        KeyValue::new(semconv::SERVICE_VERSION, info.version),
        KeyValue::new(semconv::SERVICE_INSTANCE_ID, uuid::Uuid::new_v4().to_string()),
        KeyValue::new(semconv::DEPLOYMENT_ENVIRONMENT_NAME, DEFAULT_ENVIRONMENT),
        KeyValue::new(semconv::HOST_NAME, host_name()),
        KeyValue::new(semconv::HOST_ARCH, host_arch()),
        KeyValue::new(semconv::OS_TYPE, std::env::consts::OS),
        KeyValue::new(semconv::PROCESS_PID, i64::from(std::process::id())),
        KeyValue::new(semconv::PROCESS_EXECUTABLE_NAME, executable_name()),
    ];
    let configured = config
        .resource_attributes
        .iter()
        .filter(|(key, _)| key != semconv::SERVICE_NAME)
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()));
    // Later attributes replace earlier ones with the same key.
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(detected)
        .with_attributes(configured)
        .with_service_name(service_name)
        .build()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `host.arch` in the semantic conventions' spelling.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        other => other,
    }
}

fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::FromEnv;
    use opentelemetry::Key;

    fn attr(resource: &Resource, key: &'static str) -> Option<String> {
        resource.get(&Key::from_static_str(key)).map(|v| v.to_string())
    }

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| vars.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
            .unwrap()
    }

    const INFO: ServiceInfo = ServiceInfo { name: "api", version: "0.1.0" };

    #[test]
    fn sets_identity_and_detected_attributes() {
        let r = build_resource(&config(&[]), &INFO);
        assert_eq!(attr(&r, "service.name").as_deref(), Some("api"));
        assert_eq!(attr(&r, "service.namespace").as_deref(), Some(DEFAULT_NAMESPACE));
        assert_eq!(attr(&r, "service.version").as_deref(), Some("0.1.0"));
        assert_eq!(attr(&r, "deployment.environment.name").as_deref(), Some(DEFAULT_ENVIRONMENT));
        assert_eq!(attr(&r, "telemetry.sdk.language").as_deref(), Some("rust"));
        assert_eq!(attr(&r, "process.pid"), Some(std::process::id().to_string()));
        for key in ["host.name", "host.arch", "os.type", "process.executable.name"] {
            assert!(attr(&r, key).is_some_and(|v| !v.is_empty()), "{key}");
        }
        let id = attr(&r, "service.instance.id").unwrap();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        let other = build_resource(&config(&[]), &INFO);
        assert_ne!(attr(&other, "service.instance.id").unwrap(), id, "unique per resource");
    }

    #[test]
    fn environment_overrides_in_spec_order() {
        let r = build_resource(
            &config(&[(
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs,service.namespace=shop,service.instance.id=i-1,\
                 deployment.environment.name=prod",
            )]),
            &INFO,
        );
        assert_eq!(attr(&r, "service.name").as_deref(), Some("from-attrs"));
        assert_eq!(attr(&r, "service.namespace").as_deref(), Some("shop"));
        assert_eq!(attr(&r, "service.instance.id").as_deref(), Some("i-1"));
        assert_eq!(attr(&r, "deployment.environment.name").as_deref(), Some("prod"));
        let named = build_resource(
            &config(&[
                ("OTEL_SERVICE_NAME", "from-env"),
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ]),
            &INFO,
        );
        assert_eq!(attr(&named, "service.name").as_deref(), Some("from-env"));
    }
}
