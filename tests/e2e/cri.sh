#!/usr/bin/env bash
# End-to-end test of execguard through containerd's CRI API, driven as a kubelet drives
# pods whose RuntimeClass selects a runtime handler: the `cri-e2e` binary
# (tests/src/cri_e2e.rs) against a private containerd (tests/e2e/env.sh) with the CRI
# runtimes `runc` and `execguard`. Needs root. Installs what it needs (protoc for the
# k8s-cri crate's build), builds the workspace's binaries, prints one line per check and
# "N passed, M failed"; exits non-zero if any check failed, could not run, or containerd
# left anything behind.
set -Euo pipefail
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source-path=SCRIPTDIR source=env.sh
. tests/e2e/env.sh
# shellcheck source-path=SCRIPTDIR/../..
. scripts/lib.sh

# k8s-cri's build script compiles the CRI protos with protoc.
need_packages protobuf-compiler
e2e_install || exit 1
cargo build --locked --workspace --bins || exit 1
target=$(realpath "${CARGO_TARGET_DIR:-target}")

# e2e_stop, and what it does not remove: the k8s.io directories of runc's state and of the
# cgroups (containerd's default cgroup of a CRI container without a cgroup parent is
# /k8s.io/ID; runc removes ID and leaves k8s.io). rmdir removes them only when empty, so a
# containerd that still uses them keeps them.
stop() {
  e2e_stop || return 1
  rmdir /run/containerd/runc/k8s.io /sys/fs/cgroup/*/k8s.io 2>/dev/null
  return 0
}

work=$(mktemp -d /tmp/execguard-cri.XXXXXX)
trap 'stop; rm -rf "$work"' EXIT
alerts=$work/alerts.jsonl

# ---------------------------------------------------------------------------------------
# How containerd knows execguard: only through `execguard install containerd`, run on the
# fresh configuration that e2e_start writes (which then has just the runc runtime), as an
# operator runs it on a node. The installer copies the shim to $work/bin, which is on
# containerd's PATH as /usr/local/bin is on a node's; execguard's own configuration goes to
# $work/execguard, written first so that the installer keeps it: it names the policy file
# the installer creates (the reload checks rewrite it), and every attempt is written (no
# repeat window), so that records can be counted. This node lets pods choose their mode
# (overrides = "any"): the cart pod lowers its own to monitor.
install_execguard() {
  local config=$1
  mkdir -p "$work/execguard"
  printf 'policy = "%s"\noverrides = "any"\nrepeat_window_secs = 0\n[alerts]\nfile = "%s"\n' "$work/execguard/policy.toml" "$alerts" \
    >"$work/execguard/config.toml"
  "$target/debug/execguard" install containerd --config "$config" \
    --drop-in "$(dirname "$config")/conf.d/99-execguard.toml" \
    --shim-dir "$work/bin" --execguard-dir "$work/execguard"
}
start_containerd() {
  PATH=$work/bin:$PATH E2E_CONFIGURE=install_execguard e2e_start "$work/containerd"
}
# ---------------------------------------------------------------------------------------

start_containerd || exit 1
# Into the tests' namespace and k8s.io, where the CRI plugin looks for images.
e2e_build_image execguard.test/e2e:latest || exit 1

start=$(date +%s%N)
"$target/debug/cri-e2e" --socket "$E2E_ADDRESS" --alerts "$alerts" \
  --containerd-state "$E2E_DIR/state" --image "$E2E_IMAGE" \
  --policy "$work/execguard/policy.toml" --containerd-log "$E2E_DIR/containerd.log"
status=$?
echo "== cri-e2e took $((($(date +%s%N) - start) / 1000000)) ms"

if [ $status -ne 0 ]; then
  # The evidence stays: e2e_stop leaves containerd's log and the alert file in place.
  trap stop EXIT
  echo "!! cri: failed; containerd's log: $E2E_DIR/containerd.log, alerts: $alerts" >&2
  exit $status
fi
if ! stop; then
  echo "!! cri: containerd left the above behind" >&2
  exit 1
fi
trap 'rm -rf "$work"' EXIT
