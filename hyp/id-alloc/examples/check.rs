//! The exhaustive checker of `tests/exhaustive.rs` from the command line,
//! for configurations too large for the test suite:
//!
//! ```text
//! cargo run -p id-alloc --release --example check -- --cpus 3 --contexts 4 --generations 3
//! ```
//!
//! Exits with status 1 and prints the trace if an invariant breaks.

#[path = "../tests/checker/mod.rs"]
mod checker;

use std::process::ExitCode;

use checker::{check, Config};
use id_alloc::NewIdOrder;

const USAGE: &str = "\
usage: check [--cpus N] [--contexts N] [--bits N] [--generations N] [--pins N]
             [--ballast N] [--order fixed|v1] [--exact-tlb] [--no-symmetry]
             [--dfs] [--progress]

--dfs searches depth-first: memory for the visited states only (about 40
bytes each), where breadth-first holds a whole level of allocators, but the
trace of a violation is not the shortest.

Defaults: the test suite's (2 CPUs, 3 contexts, 3-bit IDs, 3 generations,
1 pin, 3 ballast pins, fixed order). The ID_ALLOC_CHECK_* variables of the
test's ignored configured_by_environment are read first; flags override them.";

fn parse(args: &[String]) -> Result<(Config, bool), String> {
    let mut config = Config::from_env()?;
    let mut progress = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .cloned()
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} {v}: not a number"))
        };
        match flag.as_str() {
            "--cpus" => config.cpus = number(value()?)? as usize,
            "--contexts" => config.contexts = number(value()?)? as usize,
            "--bits" => config.bits = number(value()?)? as u32,
            "--generations" => config.generations = number(value()?)?,
            "--pins" => config.pins = number(value()?)? as u32,
            "--ballast" => config.ballast = number(value()?)? as u32,
            "--order" => {
                config.order = match value()?.as_str() {
                    "fixed" => NewIdOrder::Fixed,
                    "v1" => NewIdOrder::V1PinnedFirst,
                    other => return Err(format!("--order {other}: fixed or v1")),
                }
            }
            "--exact-tlb" => config.exact_tlb = true,
            "--no-symmetry" => config.symmetry = false,
            "--dfs" => config.dfs = true,
            "--progress" => progress = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    config.validate()?;
    Ok((config, progress))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, progress) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if progress {
        std::env::set_var("ID_ALLOC_CHECK_PROGRESS", "1");
    }
    println!("checking: {config}");
    match check(&config) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(violation) => {
            println!("{violation}");
            ExitCode::FAILURE
        }
    }
}
