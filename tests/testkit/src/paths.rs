//! Where the scripts, installed tools and broker directories are.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

pub(crate) const KAFKA_VERSION: &str = "4.3.1";
pub(crate) const TANSU_VERSION: &str = "0.6.0";

/// Run directories of dead test processes older than this are removed (kept a day for
/// their brokers' logs).
const STALE_RUN_DIR_AGE: Duration = Duration::from_secs(24 * 3600);

fn env_path(var: &str) -> Option<PathBuf> {
    env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The checkout root (two levels above this crate).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .to_path_buf()
}

pub(crate) fn scripts_dir() -> PathBuf {
    env_path("STRAIT_SCRIPTS").unwrap_or_else(|| workspace_root().join("scripts"))
}

pub(crate) fn cache_dir() -> PathBuf {
    env_path("STRAIT_CACHE").unwrap_or_else(|| {
        env_path("HOME")
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(".cache")
            .join("strait")
    })
}

pub(crate) fn kafka_libs() -> PathBuf {
    env_path("STRAIT_KAFKA_LIBS").unwrap_or_else(|| {
        cache_dir()
            .join(format!("kafka-{KAFKA_VERSION}"))
            .join("libs")
    })
}

pub(crate) fn tansu_bin() -> PathBuf {
    env_path("STRAIT_TANSU_BIN").unwrap_or_else(|| {
        cache_dir()
            .join(format!("tansu-{TANSU_VERSION}"))
            .join("bin")
            .join("tansu")
    })
}

pub(crate) fn python() -> PathBuf {
    env_path("STRAIT_PYTHON").unwrap_or_else(|| cache_dir().join("venv").join("bin").join("python"))
}

/// The cargo target dir: the test binary lives in `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    if let Ok(exe) = env::current_exe()
        && let Some(deps) = exe.parent()
        && deps.file_name().is_some_and(|n| n == "deps")
        && let Some(target) = deps.parent().and_then(Path::parent)
    {
        return target.to_path_buf();
    }
    env_path("CARGO_TARGET_DIR").unwrap_or_else(|| workspace_root().join("target"))
}

/// Name of the running test binary without cargo's `-<hash>` suffix.
fn binary_name() -> String {
    let stem = env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".to_owned());
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem,
    }
}

/// This process's broker directories, made on first use ([`run_dir`]).
static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();
/// Set by [`set_brokers_root`]; wins over the environment.
static BROKERS_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Puts this process's broker directories under `root` (benchmarks use a tmpfs). Only
/// before the first broker starts; `false` if it was too late or already set.
///
/// Under such a root the run directories of dead processes are removed at once rather
/// than after a day: on a tmpfs they hold memory, and a day of benchmark runs (125
/// directories, 1.2 GB once) pushed the tmpfs under the space a benchmark needs, which
/// then measured on disk instead.
pub fn set_brokers_root(root: PathBuf) -> bool {
    RUN_DIR.get().is_none() && BROKERS_ROOT.set(root).is_ok()
}

/// `<target>/strait-test-brokers` (or `$STRAIT_TEST_BROKERS_DIR`, or [`set_brokers_root`]).
pub(crate) fn brokers_root() -> PathBuf {
    if let Some(root) = BROKERS_ROOT.get() {
        return root.clone();
    }
    env_path("STRAIT_TEST_BROKERS_DIR").unwrap_or_else(|| target_dir().join("strait-test-brokers"))
}

/// `<brokers_root>/<test-binary>-<pid>`: this process's broker directories. Created on first
/// use, which also removes run directories of dead processes that are older than a day.
pub(crate) fn run_dir() -> &'static Path {
    RUN_DIR.get_or_init(|| {
        let root = brokers_root();
        let keep_for = if BROKERS_ROOT.get().is_some() {
            Duration::ZERO
        } else {
            STALE_RUN_DIR_AGE
        };
        prune_stale_run_dirs(&root, keep_for);
        let dir = root.join(format!("{}-{}", binary_name(), std::process::id()));
        fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("strait-testkit: cannot create {}: {e}", dir.display()));
        dir
    })
}

/// Removes the run directories under `root` whose process is dead and that are older than
/// `keep_for`.
fn prune_stale_run_dirs(root: &Path, keep_for: Duration) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .rsplit_once('-')
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= keep_for);
        if !alive && old {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_run_dirs_go_at_once_or_after_a_day_and_live_ones_stay() {
        let root = env::temp_dir().join(format!("strait-prune-{}", std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_dir = root.join(format!("bench-{dead}"));
        let live_dir = root.join(format!("bench-{}", std::process::id()));
        for d in [&dead_dir, &live_dir] {
            fs::create_dir_all(d.join("data")).unwrap();
        }
        prune_stale_run_dirs(&root, STALE_RUN_DIR_AGE);
        assert!(
            dead_dir.exists(),
            "a fresh dead directory is kept for a day"
        );
        prune_stale_run_dirs(&root, Duration::ZERO);
        assert!(!dead_dir.exists(), "removed at once under a chosen root");
        assert!(live_dir.exists(), "a live process keeps its directory");
        fs::remove_dir_all(&root).unwrap();
    }
}
