//! Progress bars with rate and ETA for long CLI operations, shown only when stderr is a
//! terminal and the output is for people (never with `--json` or JSON logs): the initial copy
//! of `strait run`, `strait verify`, and a spinner with elapsed time for `strait plan`.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use strait_linker::mirror::StatusHandle;
use tokio_util::sync::CancellationToken;

/// Whether bars may be drawn.
pub fn enabled(json_output: bool) -> bool {
    !json_output && std::io::stderr().is_terminal()
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style)
}

/// The initial copy of `strait run`: records mirrored against records mirrored + lag, until
/// every partition is caught up once (then the bar is replaced by one summary line).
pub async fn initial_copy(status: StatusHandle, cancel: CancellationToken) {
    let pb = bar(
        0,
        "initial copy [{bar:30}] {human_pos}/{human_len} records  {per_sec}  ETA {eta}  {msg}",
    );
    loop {
        let s = status.snapshot();
        let mirrored: u64 = s.partitions.values().map(|p| p.records_mirrored).sum();
        let lag: u64 = s
            .partitions
            .values()
            .map(|p| u64::try_from(p.lag_records.max(0)).unwrap_or(0))
            .sum();
        pb.set_length(mirrored + lag);
        pb.set_position(mirrored);
        pb.set_message(format!("{} partitions", s.partitions.len()));
        if s.all_caught_up() {
            pb.finish_and_clear();
            eprintln!(
                "initial copy done: {mirrored} records in {:.1} s",
                pb.elapsed().as_secs_f64()
            );
            return;
        }
        tokio::select! {
            () = cancel.cancelled() => {
                pb.abandon();
                return;
            }
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// `strait verify`: partitions compared so far.
pub fn verify(partitions: u64) -> ProgressBar {
    bar(
        partitions,
        "verify [{bar:30}] {pos}/{len} partitions  {per_sec}  ETA {eta}  {msg}",
    )
}

/// A spinner with elapsed time, for an operation without a measurable length (`plan`).
pub fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}
