#!/usr/bin/env bash
# Front door to the host tooling (tools/, package hyp-tools): `./run.sh help`.
#
# Works from any directory. cargo runs from the repository root so rustup
# honours rust-toolchain.toml; the caller's directory is passed on so relative
# paths on the command line (e.g. --dtb FILE) still mean what the caller meant.
set -euo pipefail
export HYP_TOOLS_CWD="$PWD"
cd "$(dirname "${BASH_SOURCE[0]}")"
exec cargo run --quiet --release -p hyp-tools -- "$@"
