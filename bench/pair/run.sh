#!/usr/bin/env bash
# Times two builds of the core crate in one process, beside quick_cache: build a is git revision
# REV_A of this repository, build b is REV_B or, without it, the working tree. Prints, per trace,
# each build's median get-hit time and the median per-round ratio b/a (below 1: b is faster).
#
#   bench/pair/run.sh HEAD~1          # the working tree against the previous commit
#   bench/pair/run.sh main HEAD 60    # two revisions, 60 rounds
#
# Why: on this project's VM the time of a cache-miss-bound loop moves by several percent from one
# process to the next, more than many changes are worth; two builds timed in turn inside one
# process see the same conditions. The workspace is generated under target/pair (nothing else is
# written).
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
rev_a=${1:?usage: bench/pair/run.sh REV_A [REV_B] [ROUNDS]}
rev_b=${2:-}
rounds=${3:-42}
ws=$root/target/pair
rm -rf "$ws" && mkdir -p "$ws/h"
# the root workspace's shared settings, with its own members
sed -e '/^members = /c\members = ["a", "b", "h"]' -e '/^default-members = /d' -e '/^healcache = /d' \
    "$root/Cargo.toml" > "$ws/Cargo.toml"
for x in a b; do
  rev=$rev_a
  [ "$x" = b ] && rev=$rev_b
  if [ -n "$rev" ]; then
    git -C "$root" archive "$rev" core | tar -x -C "$ws"
  else
    mkdir -p "$ws/core" && cp -r "$root/core/Cargo.toml" "$root/core/src" "$ws/core/"
  fi
  # the package only: no benches, examples, tests or their dev-dependencies (they name the crate
  # `healcache`, and the test kit lives outside the archived folder)
  sed -e "s/^name = \"healcache\"/name = \"hc_$x\"/" -e '/^\[dev-dependencies\]/,$d' "$ws/core/Cargo.toml" > "$ws/core/Cargo.new"
  mv "$ws/core/Cargo.new" "$ws/core/Cargo.toml"
  mv "$ws/core" "$ws/$x"
done
cat > "$ws/h/Cargo.toml" <<'TOML'
[package]
name = "pair"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
hc_a = { path = "../a" }
hc_b = { path = "../b" }
quick_cache = "0.7"
rand = { workspace = true }
rand_distr = "0.5"
# for core/benches/common, which main.rs includes
moka = { version = "0.12", features = ["sync"] }
hashbrown = { workspace = true }
TOML
printf '[[bin]]\nname = "pair"\npath = "%s"\n' "$root/bench/pair/main.rs" >> "$ws/h/Cargo.toml"
cp "$root/Cargo.lock" "$ws/Cargo.lock"
(cd "$ws" && cargo build --release -q -p pair)
echo "a = $rev_a, b = ${rev_b:-working tree}"
"$ws/target/release/pair" "$rounds"
