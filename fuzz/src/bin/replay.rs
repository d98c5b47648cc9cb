//! Stable replay of a fuzz corpus: runs `strait_fuzz::check` on every file under the given
//! files or directories (default `fuzz/corpus/raw_batch`), so the invariants are exercised
//! without nightly. `--seed DIR` writes the seed inputs (valid batches of every kind) first.
//!
//! ```sh
//! cargo run --release --manifest-path fuzz/Cargo.toml --no-default-features --bin replay -- [--seed DIR] [PATH...]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            files(&entry, out)?;
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--seed") {
        let Some(dir) = args.get(at + 1).cloned() else {
            eprintln!("--seed needs a directory");
            return ExitCode::from(2);
        };
        args.drain(at..at + 2);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot create {dir}: {e}");
            return ExitCode::FAILURE;
        }
        for (name, bytes) in strait_fuzz::seeds() {
            let path = Path::new(&dir).join(name);
            if let Err(e) = std::fs::write(&path, bytes) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if args.is_empty() {
        args.push(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/raw_batch").to_owned());
    }
    let mut inputs = Vec::new();
    for arg in &args {
        if let Err(e) = files(Path::new(arg), &mut inputs) {
            eprintln!("cannot read {arg}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if inputs.is_empty() {
        eprintln!("no inputs under {args:?}");
        return ExitCode::FAILURE;
    }
    for input in &inputs {
        match std::fs::read(input) {
            // A panic (a broken invariant) aborts with the input's name printed first.
            Ok(data) => {
                eprintln!("replay: {}", input.display());
                strait_fuzz::check(&data);
            }
            Err(e) => {
                eprintln!("cannot read {}: {e}", input.display());
                return ExitCode::FAILURE;
            }
        }
    }
    // Every input cut short and with each byte flipped once more, for a little extra reach.
    let mut runs = inputs.len();
    for input in &inputs {
        let data = std::fs::read(input).unwrap_or_default();
        for cut in 0..data.len().min(256) {
            strait_fuzz::check(&data[..cut]);
            let mut flipped = data.clone();
            flipped[cut] ^= 0xff;
            strait_fuzz::check(&flipped);
            runs += 2;
        }
    }
    println!("replayed {} inputs ({runs} runs): ok", inputs.len());
    ExitCode::SUCCESS
}
