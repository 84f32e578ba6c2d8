#!/usr/bin/env bash
# Proves the end-to-end environment of tests/e2e/env.sh: a private containerd in a fresh
# directory under /tmp, the test image, a `ctr run` of the image's real tools, a
# `ctr task exec` into a running container, and a stop that leaves nothing behind. Prints
# how long each step took. Exits non-zero, saying where, on any failure.
#
# The last check compares the machine's containerd state (/run/containerd, the e2e
# cgroups) before and after: another containerd started or stopped meanwhile (a second
# smoke.sh, say) makes it fail.
#
# E2E_RUNTIME picks the runtime (default io.containerd.runc.v2); with the execguard shim on
# PATH, E2E_RUNTIME=io.containerd.execguard.v2 runs the same steps through it.
# E2E_CONTAINERD picks the containerd (env.sh: 1.6, the default, or 2.3).
set -Eeuo pipefail # -E: the ERR trap below fires inside functions too
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "$0")/env.sh"

runtime=${E2E_RUNTIME:-io.containerd.runc.v2}
trap 'echo "!! smoke: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

# Runs "$@" in this shell (e2e_start exports variables) and prints how long it took.
timed() {
  local label=$1 start
  shift
  start=$(date +%s%N)
  "$@"
  echo "== $label took $((($(date +%s%N) - start) / 1000000)) ms"
}

# What the machine holds outside the instance's directory that a containerd and its shims
# could leave: shim sockets, fifos, runc state, the namespaces' cgroups.
outside_state() {
  if [ -d /run/containerd ]; then find /run/containerd -mindepth 1 | sort; fi
  ls -d /sys/fs/cgroup/*/execguard-e2e* 2>/dev/null || true
}

# Fails with MESSAGE unless TEXT contains WANTED.
expect() {
  local text=$1 wanted=$2 message=$3
  if [[ $text != *"$wanted"* ]]; then
    echo "!! smoke: $message: no \"$wanted\" in:" >&2
    echo "$text" >&2
    return 1
  fi
}

timed "e2e_install" e2e_install

before=$(outside_state)
dir=$(mktemp -d /tmp/execguard-e2e.XXXXXX)
trap 'e2e_stop; echo "!! smoke: kept $dir for inspection (containerd.log is there)" >&2' EXIT
timed "e2e_start $dir" e2e_start "$dir"

# The CRI service, and in 2.x the plugins it is split into (io.containerd.cri.v1 images
# and runtime): all of them loaded.
plugins=$(ectr plugins ls)
if ! grep -Eq 'io\.containerd\.grpc\.v1 +cri +.* ok' <<<"$plugins" || grep -E '(\.cri\.| cri )' <<<"$plugins" | grep -vq ' ok *$'; then
  echo "!! smoke: the CRI plugin did not load:" >&2
  grep cri <<<"$plugins" >&2
  false
fi

timed "e2e_build_image" e2e_build_image execguard.test/e2e:smoke
expect "$(ectr images ls -q)" "$E2E_IMAGE" "the test image is not in $E2E_NAMESPACE"
expect "$(ectr -n k8s.io images ls -q)" "$E2E_SANDBOX_IMAGE" "the sandbox image is not in k8s.io"

echo "== ctr run --rm ($runtime): ls /, nc -h, nmap --version, socat -V"
# shellcheck disable=SC2016 # the container's shell expands this script
out=$(ectr run --rm --runtime "$runtime" "$E2E_IMAGE" smoke-run /bin/sh -c '
  for command in "ls /" "nc -h" "nmap --version" "socat -V"; do
    echo "\$ $command"
    output=$($command 2>&1)
    echo "$command: exit status $?"
    case $command in ls*) output=$(echo $output) ;; esac # the whole listing, on one line
    echo "$output" | head -n 3
  done' 2>&1)
echo "$out"
for command in "ls /" "nc -h" "nmap --version" "socat -V"; do
  expect "$out" "$command: exit status 0" "$command failed in the container"
done
expect "$out" "usr" "ls / did not list the root"
expect "$out" "OpenBSD netcat" "nc -h did not run netcat-openbsd"
expect "$out" "Nmap version" "nmap --version did not run"
expect "$out" "socat version" "socat -V did not run"

echo "== ctr task exec into a running container"
timed "ctr run -d (a container to exec into)" ectr run -d --runtime "$runtime" "$E2E_IMAGE" smoke-long sleep infinity
out=$(ectr task exec --exec-id smoke-exec smoke-long /bin/sh -c 'ps; nc -h 2>&1 | head -n 1')
echo "$out"
if ! grep -Eq '^ *1 +root +sleep infinity' <<<"$out"; then
  echo "!! smoke: the exec did not run in the container's pid namespace (no sleep as pid 1)" >&2
  false
fi
expect "$out" "OpenBSD netcat" "nc did not run in the exec"

# smoke-long is still running: e2e_stop must take it down with its shim.
timed "e2e_stop" e2e_stop
trap - EXIT

echo "== checking that nothing is left"
left=0
if pgrep -af -- "$dir"; then
  echo "!! smoke: processes mentioning $dir are left (above)" >&2
  left=1
fi
if grep -F -- "$dir" /proc/self/mountinfo; then
  echo "!! smoke: mounts under $dir are left (above)" >&2
  left=1
fi
after=$(outside_state)
if [ "$after" != "$before" ]; then
  diff <(echo "$before") <(echo "$after") >&2 || true
  echo "!! smoke: the machine's containerd state changed (diff above: > is new)" >&2
  left=1
fi
[ $left = 0 ] || { echo "!! smoke: FAILED: left behind; kept $dir" >&2; exit 1; }
rm -rf "$dir"
echo "e2e smoke: PASS"
