//! `strait scenario run PLAYBOOK.yaml [--json]`: runs a cutover playbook against real
//! clusters and reports, for every consumer group, whether it resumed at exactly the right
//! record with nothing lost and nothing duplicated.
//!
//! ```text
//!  playbook.rs  the YAML format, checked before anything starts
//!  env.rs       clusters (local brokers the runner owns, or existing ones) and `strait run`
//!               as a child process driven over its control API
//!  workload.rs  rdkafka producers and consumer groups recording every ack and every read
//!  run.rs       the steps, in order; then stop, read the cutover reports, `strait verify`
//!  verdict.rs   the assertions and the report (text or JSON)
//! ```
//!
//! The same playbooks in `scenarios/` run in the test suite (`tests/scenarios.rs`).
//! Local brokers are started with the test harness's scripts (`scripts/kafka.sh`,
//! `scripts/tansu.sh`), which must be installed (`scripts/test.sh` or the quickstart does it).

mod env;
mod playbook;
mod run;
mod verdict;
mod workload;

use std::path::PathBuf;

use anyhow::Context as _;

pub use playbook::Playbook;

#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    #[command(subcommand)]
    command: ScenarioCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ScenarioCommand {
    /// Runs a playbook: starts its clusters, runs its steps and judges its assertions.
    /// Exit 0 when every step worked and every assertion held, 1 otherwise, 2 for a bad
    /// playbook.
    Run(RunArgs),
    /// Checks playbooks without running them (exit 2 on the first bad one).
    Check {
        /// Playbook files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The playbook (YAML), e.g. `scenarios/zero-loss-cutover.yaml`.
    file: PathBuf,
    /// Print the report as JSON on stdout (the text report goes to stderr).
    #[arg(long)]
    json: bool,
    /// Where strait's config, state and log go; default: a new directory under the
    /// system's temporary directory, kept after the run.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// Outcome of `strait scenario`: the process exit code.
pub async fn run(args: ScenarioArgs) -> anyhow::Result<u8> {
    match args.command {
        ScenarioCommand::Check { files } => {
            for f in files {
                if let Err(e) = Playbook::load(&f) {
                    eprintln!("error: {e:#}");
                    return Ok(2);
                }
                println!("{}: ok", f.display());
            }
            Ok(0)
        }
        ScenarioCommand::Run(a) => {
            let book = match Playbook::load(&a.file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(2);
                }
            };
            let work = match a.work_dir {
                Some(w) => w,
                None => {
                    let base = std::env::temp_dir().join("strait-scenarios");
                    std::fs::create_dir_all(&base)?;
                    tempfile_dir(&base, &book.name)?
                }
            };
            eprintln!("scenario {}: work dir {}", book.name, work.display());
            let report = run::run(&book, work).await?;
            if a.json {
                eprint!("{}", verdict::render(&report));
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", verdict::render(&report));
            }
            Ok(if report.passed { 0 } else { 1 })
        }
    }
}

/// A new, kept directory `<base>/<name>-XXXX`.
fn tempfile_dir(base: &std::path::Path, name: &str) -> anyhow::Result<PathBuf> {
    for _ in 0..100 {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let dir = base.join(format!("{name}-{id}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    anyhow::bail!("cannot create a work directory in {}", base.display())
}
