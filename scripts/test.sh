#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (release
# build, reused by the interop script), then the real-client interop script.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings
echo "== cargo deny (licenses, bans, sources; deny.toml)"
if ! command -v cargo-deny >/dev/null; then
  echo "cargo-deny is missing: cargo install cargo-deny --locked" >&2
  exit 1
fi
cargo deny --log-level error check licenses bans sources
echo "== cargo test (release)"
cargo test --workspace --release
echo "== interop (curl, h2load) against target/release/fulcrum"
cargo build --release --bin fulcrum
bash scripts/interop.sh target/release/fulcrum
echo "== all tests passed"
