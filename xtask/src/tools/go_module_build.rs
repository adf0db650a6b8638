//! One command of a Go module built at an exact version in a throwaway module, for the tools
//! `go install pkg@version` refuses: it rejects a module whose go.mod has `replace` directives
//! (Jaeger, Thanos), and it asks the proxy for a version list the proxy may not serve
//! (postgres_exporter). The throwaway module (in the tool's directory) takes over the upstream
//! go.mod's `replace` directives (read from the module cache, so the build resolves what
//! upstream's does), requires exactly that version (`go get`), and `go build`s the command with
//! the release's `-ldflags` and build tags.

use super::go;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::process::{self, Output, run};

/// What to build, and how.
#[derive(Debug)]
pub struct GoModuleBuild<'a> {
    /// The binary's name (`<dir>/<name>`), also the name of the build in its progress lines.
    pub name: &'a str,
    /// The upstream Go module, e.g. `github.com/thanos-io/thanos`.
    pub module: &'a str,
    /// Its version, without the `v`.
    pub version: &'a str,
    /// The command's package in that module.
    pub package: &'a str,
    /// `-ldflags` of the build (upstream's release sets the version with `-X`); empty for none.
    pub ldflags: String,
    /// Build tags of upstream's release build.
    pub tags: &'a [&'a str],
    /// Environment of every `go` command of this build only (beside the caller's).
    pub env: Vec<(&'a str, &'a str)>,
}

impl GoModuleBuild<'_> {
    /// Builds the command into `<dir>/<name>`; the throwaway module is `<dir>/module`.
    pub fn build(&self, dir: &Path) -> anyhow::Result<()> {
        let module = dir.join("module");
        std::fs::create_dir_all(&module)
            .with_context(|| format!("creating {}", module.display()))?;
        // A fresh go.mod each time: a half-finished earlier build leaves nothing that matters.
        let go_mod = format!("module orgraph/{}-build\n\ngo 1.24\n", self.name.replace('_', "-"));
        std::fs::write(module.join("go.mod"), go_mod)?;
        let _ = std::fs::remove_file(module.join("go.sum"));
        let label = format!("{} build", self.name);
        let upstream_go_mod = self.module_dir()?.join("go.mod");
        let text = std::fs::read_to_string(&upstream_go_mod)
            .with_context(|| format!("reading {}", upstream_go_mod.display()))?;
        for (old, new) in replaces(&text) {
            let mut edit = self.go()?;
            edit.args(["mod", "edit", &format!("-replace={old}={new}")]).current_dir(&module);
            run(&label, &mut edit, Output::Prefixed(&label), Duration::from_secs(60))?;
        }
        let mut get = self.go()?;
        get.args(["get", &format!("{}@v{}", self.package, self.version)]).current_dir(&module);
        run(&label, &mut get, Output::Prefixed(&label), go::BUILD_TIMEOUT)?;
        let mut build = self.go()?;
        build.arg("build");
        if !self.tags.is_empty() {
            build.arg(format!("-tags={}", self.tags.join(",")));
        }
        if !self.ldflags.is_empty() {
            build.arg(format!("-ldflags={}", self.ldflags));
        }
        build.arg("-o").arg(dir.join(self.name)).arg(self.package).current_dir(&module);
        run(&label, &mut build, Output::Prefixed(&label), go::BUILD_TIMEOUT)
    }

    /// Where the Go module cache holds the upstream module at this version (`go mod download`
    /// fetches it from the module proxy the first time).
    pub fn module_dir(&self) -> anyhow::Result<PathBuf> {
        let at = format!("{}@v{}", self.module, self.version);
        let mut command = self.go()?;
        command.args(["mod", "download", "-json", &at]);
        let json = process::output("go mod download", &mut command, Duration::from_secs(10 * 60))?;
        let info: serde_json::Value =
            serde_json::from_str(&json).context("`go mod download -json` printed no JSON")?;
        let dir = info
            .get("Dir")
            .and_then(serde_json::Value::as_str)
            .with_context(|| format!("`go mod download -json {at}` names no Dir: {json}"))?;
        Ok(PathBuf::from(dir))
    }

    /// A `go` command with this build's environment.
    fn go(&self) -> anyhow::Result<Command> {
        let mut command = Command::new(go::go()?);
        command.envs(self.env.iter().copied());
        Ok(command)
    }
}

/// The `replace` directives of a go.mod, as `(old, new)` in the form `go mod edit -replace`
/// takes (`path[@version]`), single-line and block form alike. Local-path replacements (which a
/// published module cannot use) are left out.
pub fn replaces(go_mod: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or_default().trim();
        let directive = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line == "replace (" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("replace ") {
            rest
        } else {
            continue;
        };
        let Some((old, new)) = directive.split_once("=>") else { continue };
        let joined = |side: &str| side.split_whitespace().collect::<Vec<_>>().join("@");
        let (old, new) = (joined(old), joined(new));
        if !new.starts_with('.') && !new.starts_with('/') && !old.is_empty() {
            out.push((old, new));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_directives_are_read_in_both_forms() {
        let go_mod = "module m\n\nrequire x v1\n\nreplace github.com/a/b => github.com/a/b v1.33.0\n\
                      replace (\n\tgithub.com/c/d v0.2.0 => github.com/e/d v0.1.0 // why\n\
                      \tgithub.com/local => ../local\n)\n// replace github.com/no => github.com/no v1\n";
        assert_eq!(
            replaces(go_mod),
            [
                ("github.com/a/b".to_string(), "github.com/a/b@v1.33.0".to_string()),
                ("github.com/c/d@v0.2.0".to_string(), "github.com/e/d@v0.1.0".to_string()),
            ]
        );
        assert!(replaces("module m\nrequire x v1\n").is_empty());
    }

    /// Thanos' replace block has comment lines and blank lines between its entries (the shape of
    /// its go.mod at v0.42.5).
    #[test]
    fn a_block_with_comment_and_blank_lines_keeps_every_entry() {
        let go_mod = "replace (\n\t// Pinning x due to an issue.\n\tcapnproto.org/go/capnp/v3 => \
                      capnproto.org/go/capnp/v3 v3.0.0-alpha.30\n\n\t// The domain expired.\n\t\
                      zenhack.net/go/util => github.com/zenhack/go-util v0.0.0-2023\n)\n";
        assert_eq!(
            replaces(go_mod),
            [
                (
                    "capnproto.org/go/capnp/v3".to_string(),
                    "capnproto.org/go/capnp/v3@v3.0.0-alpha.30".to_string()
                ),
                (
                    "zenhack.net/go/util".to_string(),
                    "github.com/zenhack/go-util@v0.0.0-2023".to_string()
                ),
            ]
        );
    }
}
