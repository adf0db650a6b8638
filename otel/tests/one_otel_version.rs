//! The whole workspace must resolve to one version of each OpenTelemetry crate: a second
//! `opentelemetry` (pulled in by apalis, say) means a second global meter provider, and whatever
//! records through it silently vanishes.

#[test]
fn cargo_lock_holds_one_version_of_each_opentelemetry_crate() {
    let path = testkit::repo_root().join("Cargo.lock");
    let lock = std::fs::read_to_string(path).expect("Cargo.lock");
    for krate in ["opentelemetry", "opentelemetry_sdk", "opentelemetry-otlp", "opentelemetry-proto"]
    {
        let versions: Vec<&str> = lock
            .split("[[package]]")
            .filter(|p| p.contains(&format!("\nname = \"{krate}\"\n")))
            .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .collect();
        assert_eq!(versions.len(), 1, "{krate} resolves to {versions:?}: pin one version");
    }
}
