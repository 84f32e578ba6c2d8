# shellcheck shell=bash source-path=SCRIPTDIR
# The end-to-end test environment: a private containerd (with the CRI plugin) and a small
# test image, on a machine of the project's kind (root, Debian, no network but the package
# registries). Sourcing this file only defines functions; nothing runs until they are called.
#
#   e2e_install             installs the Debian packages below if any is missing
#   e2e_start DIR           starts a private containerd of the line E2E_CONTAINERD (below)
#                           that keeps everything under DIR and exports E2E_DIR, E2E_ADDRESS,
#                           E2E_NAMESPACE, E2E_SANDBOX_IMAGE, E2E_CONTAINERD and
#                           E2E_CONTAINERD_BIN (the directory of that line's containerd, ctr
#                           and containerd-shim-runc-v2)
#   ectr ARGS...            ctr (the line's own) against that containerd, in $E2E_NAMESPACE
#                           unless -n says otherwise (`ectr -n k8s.io images ls`)
#   e2e_containerd_2x_tarball
#                           the absolute path of containerd 2.3.4's tarball (below), or a
#                           message saying how to provide it
#   e2e_shim_sockets NS ID  where the shims (runc's, execguard's) of container (or pod
#                           sandbox) ID in namespace NS may listen, one path a line
#   e2e_build_image NAME    builds the test image (cached) and imports it as NAME into
#                           $E2E_NAMESPACE and k8s.io, with the pod sandbox image in k8s.io;
#                           exports E2E_IMAGE=NAME
#   e2e_build_busybox_image NAME
#                           builds and imports an Alpine-style image whose every command,
#                           sh and the network tools included, is a symlink to one static
#                           busybox; exports E2E_BUSYBOX_IMAGE=NAME
#   e2e_restart             stops that containerd (SIGTERM) with its shims left running, and
#                           starts it again on the same directories
#   e2e_stop                stops every container, shim and the containerd, unmounts what is
#                           left under E2E_DIR and fails loudly if anything is still there;
#                           idempotent and safe in `trap e2e_stop EXIT`
#
# Set before e2e_start:
#   E2E_CONTAINERD          which containerd to start: `1.6` (the default) is Debian's 1.6.20,
#                           the containerd on PATH; `2.3` is containerd 2.3.4, unpacked once
#                           from its tarball into E2E_IMAGE_CACHE and put first on
#                           containerd's PATH, so that its own containerd-shim-runc-v2 runs
#                           the containers. e2e_start checks the version it finds and says it.
#   EXECGUARD_CONTAINERD_2X_TARBALL
#                           for `2.3`, the path of containerd-2.3.4-linux-amd64.tar.gz
#                           (checked against its sha256 below; default
#                           <repo>/../shared/containerd/containerd-2.3.4-linux-amd64.tar.gz).
#                           Needed only while the cache does not hold it unpacked.
#   E2E_NAMESPACE           the tests' namespace (default execguard-e2e-<8 hex digits of
#                           DIR's hash>, one per instance)
#   PATH                    so that it holds containerd-shim-execguard-v2 when a test uses
#                           `--runtime io.containerd.execguard.v2`: containerd and its shims
#                           inherit it.
# Set before e2e_start or e2e_build_image: E2E_IMAGE_CACHE, where the test images and the
# unpacked containerd 2.3.4 are kept (default <repo>/target/e2e).
#
# DIR may have at most 85 characters (the sockets in it), and at most 40 for `2.3`, whose
# shims put their sockets in DIR/s (containerd 2.3.4 refuses a socket_dir longer than 42).
#
# Typical use, from the repository's root:
#   . tests/e2e/env.sh
#   e2e_install
#   trap e2e_stop EXIT
#   PATH=$PWD/target/debug:$PATH e2e_start "$(mktemp -d /tmp/execguard-e2e.XXXXXX)"
#   e2e_build_image execguard.test/e2e:latest
#   ectr run --rm --runtime io.containerd.execguard.v2 "$E2E_IMAGE" t1 nc -h
# The suites built on it (smoke.sh, shim.sh, cri.sh) run on either line:
#   E2E_CONTAINERD=2.3 tests/e2e/shim.sh
#
# Every function returns non-zero with a message on stderr when it fails, so callers can
# run under `set -Eeuo pipefail` or test the status themselves.

# The packages the environment and the test image are made from (see
# shared/reference/e2e-environment.md for why each is there).
_E2E_PACKAGES=(containerd runc busybox-static dash netcat-openbsd nmap socat iproute2 gcc libc6-dev python3)

# containerd 2.3.4 for E2E_CONTAINERD=2.3 (shared/containerd/README.md says how it was
# built), and the sha256sum of the tarball the harness was written against.
_E2E_CONTAINERD_2X_TARBALL=containerd-2.3.4-linux-amd64.tar.gz
_E2E_CONTAINERD_2X_SHA256=599799aa1497cc7f3f104adaac99dd6fa6bcf55a65cabf343af3975503e9feff

# The CRI plugin cannot pull its pause image on a machine without a registry, so
# e2e_build_image imports one under this name (CRI's sandbox_image).
_E2E_SANDBOX_IMAGE=execguard.test/pause:e2e

# The test image's busybox applets. Only these become /bin symlinks: busybox's network
# applets (nc, telnet, wget, ...) stay out so that every network tool in the image is a real
# program whose execve the supervisor sees, and sh stays dash because busybox's own shell
# runs applets in-process without any execve.
_E2E_APPLETS=(
  '[' awk basename cat chmod chown chroot cp cut date dd df dirname du echo env expr false find
  grep head hostname id kill ln ls mkdir mkfifo mktemp mv od pidof printf ps pwd readlink
  realpath rm rmdir sed seq setsid sha256sum sleep sort stat tail tee test timeout touch tr
  true tty uname uniq wc which whoami xargs yes stty
)

_e2e_say() { echo "== e2e: $*" >&2; }
# Says what failed; the caller returns 1 (so that a caller's `set -e` still lets the
# message out first).
_e2e_error() { echo "!! e2e: $*" >&2; }

# The repository this file belongs to.
_e2e_repo() { (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P); }

e2e_install() {
  # shellcheck source=../../scripts/lib.sh
  . "$(_e2e_repo)/scripts/lib.sh" || return 1
  if ! need_packages "${_E2E_PACKAGES[@]}"; then
    _e2e_error "installing ${_E2E_PACKAGES[*]} failed"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------
# containerd

e2e_start() {
  local dir=${1:?usage: e2e_start DIR}
  if [ -n "${E2E_DIR:-}" ] && [ -e "$E2E_DIR/containerd.pid" ]; then
    _e2e_error "a containerd from $E2E_DIR is still running: e2e_stop it first"
    return 1
  fi
  mkdir -p "$dir" || return 1
  # Absolute and physical: e2e_stop finds processes and mounts by this exact string.
  dir=$(cd "$dir" && pwd -P) || return 1
  # A unix socket path holds at most 107 bytes (sun_path); the longest one here is
  # DIR/containerd.sock.ttrpc.
  if [ ${#dir} -gt 85 ]; then
    _e2e_error "$dir is too long for the sockets that go in it (at most 85 characters)"
    return 1
  fi
  local line=${E2E_CONTAINERD:-1.6} bin
  # containerd 2.3.4 refuses a shim socket_dir (DIR/s) longer than 42 characters
  # (core/runtime/v2/socket_linux.go, maxSocketDirLen: 107 bytes of sun_path less "/" and
  # the 64 hex digits of the socket's name).
  if [ "$line" = 2.3 ] && [ ${#dir} -gt 40 ]; then
    _e2e_error "$dir is too long for containerd 2.3's shim sockets in $dir/s (at most 40 characters)"
    return 1
  fi
  bin=$(_e2e_containerd_bin "$line") || return 1
  mkdir -p "$dir"/{root,state,opt,fifo,tmp,s,cdi,cni/bin,cni/net.d} || return 1

  export E2E_CONTAINERD=$line E2E_CONTAINERD_BIN=$bin
  export E2E_DIR=$dir
  export E2E_ADDRESS=$dir/containerd.sock
  # Its own namespace by default: runc's state (/run/containerd/runc/NAMESPACE/ID) and
  # ctr's cgroups (/NAMESPACE/ID) are machine-wide, so two instances running a container of
  # the same name in the same namespace would collide.
  local hash
  hash=$(printf '%s' "$dir" | sha256sum)
  export E2E_NAMESPACE=${E2E_NAMESPACE:-execguard-e2e-${hash:0:8}}
  export E2E_SANDBOX_IMAGE=$_E2E_SANDBOX_IMAGE
  _e2e_config >"$dir/config.toml" || return 1

  # containerd starts the runc shim it finds first on PATH (and the shims, runc): for 2.3
  # that must be 2.3.4's own, which serves the task API v3. For 1.6 the PATH stays the
  # caller's, where Debian's containerd was found.
  local path=$PATH
  [ "$line" = 1.6 ] || path=$bin:$PATH
  # E2E_CONFIGURE, when set, is a command that registers execguard itself (the installer)
  # in the configuration written above, which then has only the runc runtime. It finds
  # this containerd first on PATH, as on a node: the installer asks `containerd config
  # dump` what its change did.
  if [ -n "${E2E_CONFIGURE:-}" ]; then
    PATH=$path "$E2E_CONFIGURE" "$dir/config.toml" || return 1
  fi
  # The shared directories this instance's shims may create, and that e2e_stop removes
  # (when empty) only if they were not there before.
  local shared
  for shared in /run/containerd/s /run/containerd/fifo /run/containerd/runc /run/containerd; do
    [ -e "$shared" ] || echo "$shared"
  done >"$dir/shared-dirs"
  _e2e_say "containerd $(_e2e_containerd_version "$bin") ($bin/containerd) in $dir"
  # e2e_restart starts it again the same way.
  _E2E_LAUNCH_PATH=$path
  _e2e_launch
}

# Starts the private containerd of E2E_DIR and waits until it answers.
_e2e_launch() {
  local dir=$E2E_DIR bin=$E2E_CONTAINERD_BIN
  PATH=$_E2E_LAUNCH_PATH "$bin/containerd" --config "$dir/config.toml" </dev/null >>"$dir/containerd.log" 2>&1 &
  local pid=$!
  # Out of the job table, so that a caller's bare `wait` does not wait for containerd.
  disown "$pid"
  echo "$pid" >"$dir/containerd.pid"

  # ctr waits for the socket without end unless told otherwise.
  local deadline=$((SECONDS + 20))
  while [ $SECONDS -lt $deadline ]; do
    if "$bin/ctr" --address "$E2E_ADDRESS" --connect-timeout 1s version >/dev/null 2>&1; then
      _e2e_deprecations
      return 0
    fi
    if ! _e2e_alive "$pid"; then
      tail -n 20 "$dir/containerd.log" >&2
      _e2e_error "containerd exited at start; its log is $dir/containerd.log"
      rm -f "$dir/containerd.pid"
      return 1
    fi
    sleep 0.1
  done
  tail -n 20 "$dir/containerd.log" >&2
  _e2e_error "containerd did not answer on $E2E_ADDRESS within 20 s; its log is $dir/containerd.log"
  e2e_stop
  return 1
}

# Stops the private containerd as systemd does (SIGTERM), while its shims and containers
# keep running, and starts it again on the same directories.
e2e_restart() {
  local pid
  pid=$(cat "$E2E_DIR/containerd.pid") || return 1
  kill -TERM "$pid" || return 1
  local deadline=$((SECONDS + 20))
  while _e2e_alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then
      _e2e_error "containerd $pid did not exit within 20 s of SIGTERM"
      return 1
    fi
    sleep 0.1
  done
  rm -f "$E2E_DIR/containerd.pid"
  _e2e_launch
}

# ctr of 2.x prints every deprecation containerd knows of at each call (on this machine:
# "The support for cgroup v1 is deprecated", always). ectr and e2e_stop suppress that
# (ctr reads CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS; 1.6's ignores it); e2e_start says them
# once instead. 1.6's ctr has no deprecations command.
_e2e_deprecations() {
  [ "$E2E_CONTAINERD" = 1.6 ] && return 0
  local id _ message
  while read -r id _ message; do
    _e2e_say "containerd says: $id: $message"
  done < <(_e2e_ctr deprecations list | tail -n +2)
}

# The directory holding containerd, ctr and containerd-shim-runc-v2 of LINE (1.6, 2.3),
# checked to be of that line.
_e2e_containerd_bin() {
  local line=$1 bin version
  case $line in
    1.6)
      if ! bin=$(command -v containerd); then
        _e2e_error "no containerd on PATH for E2E_CONTAINERD=1.6: e2e_install installs Debian's"
        return 1
      fi
      bin=$(dirname "$bin")
      ;;
    2.3) bin=$(_e2e_containerd_2x) || return 1 ;;
    *)
      _e2e_error "E2E_CONTAINERD=$line: the lines are 1.6 (Debian's containerd on PATH) and 2.3 (2.3.4 from its tarball)"
      return 1
      ;;
  esac
  local binary
  for binary in containerd ctr containerd-shim-runc-v2; do
    if [ ! -x "$bin/$binary" ]; then
      _e2e_error "$bin has no $binary for E2E_CONTAINERD=$line"
      return 1
    fi
  done
  version=$(_e2e_containerd_version "$bin")
  # Debian's says 1.6.20~ds1, upstream's v2.3.4.
  if [[ ${version#v} != "$line".* ]]; then
    _e2e_error "E2E_CONTAINERD=$line, but $bin/containerd is version $version"
    return 1
  fi
  echo "$bin"
}

# The version of BIN/containerd: "containerd github.com/containerd/containerd[/v2] VERSION REVISION".
_e2e_containerd_version() {
  local words
  read -ra words < <("$1/containerd" --version 2>/dev/null)
  echo "${words[2]:-unknown}"
}

e2e_containerd_2x_tarball() {
  local tarball=${EXECGUARD_CONTAINERD_2X_TARBALL:-$(_e2e_repo)/../shared/containerd/$_E2E_CONTAINERD_2X_TARBALL}
  if [ ! -f "$tarball" ]; then
    _e2e_error "E2E_CONTAINERD=2.3 needs containerd 2.3.4, and $tarball is not a file: set" \
      "EXECGUARD_CONTAINERD_2X_TARBALL to the path of $_E2E_CONTAINERD_2X_TARBALL" \
      "(sha256 $_E2E_CONTAINERD_2X_SHA256), or put it in ../shared/containerd/ beside the checkout"
    return 1
  fi
  realpath "$tarball"
}

# containerd 2.3.4's bin/, unpacked from its tarball into the cache on first use: aside,
# then renamed into place whole, so that a concurrent run never uses half of it (when
# another run got there first, its copy is as good). The directory is named by the
# tarball's sha256, checked before unpacking.
_e2e_containerd_2x() {
  local cache=${E2E_IMAGE_CACHE:-$(_e2e_repo)/target/e2e}
  local dir=$cache/containerd-${_E2E_CONTAINERD_2X_SHA256:0:16}
  if [ -x "$dir/bin/containerd" ]; then
    echo "$dir/bin"
    return 0
  fi
  local tarball sum
  tarball=$(e2e_containerd_2x_tarball) || return 1
  sum=$(sha256sum <"$tarball") || return 1
  if [ "${sum%% *}" != "$_E2E_CONTAINERD_2X_SHA256" ]; then
    _e2e_error "$tarball has sha256 ${sum%% *}, not $_E2E_CONTAINERD_2X_SHA256: it is not the containerd 2.3.4 the harness was written against"
    return 1
  fi
  mkdir -p "$cache" || return 1
  local partial
  partial=$(mktemp -d "$cache/.containerd.XXXXXX") || return 1
  # The tarball lists its files' sums in SHA256SUMS.
  if ! tar -xzf "$tarball" -C "$partial" || ! (cd "$partial" && sha256sum --quiet --check SHA256SUMS >&2); then
    rm -rf "$partial"
    _e2e_error "unpacking $tarball into $cache failed"
    return 1
  fi
  mv -T "$partial" "$dir" 2>/dev/null || rm -rf "$partial"
  if [ ! -x "$dir/bin/containerd" ]; then
    _e2e_error "unpacking $tarball: no $dir/bin/containerd"
    return 1
  fi
  echo "$dir/bin"
}

# The private containerd's configuration, for its line: every path it owns is under E2E_DIR.
_e2e_config() {
  "_e2e_config_${E2E_CONTAINERD/./}"
}

# containerd 1.6: config version 2, where the CRI plugin is io.containerd.grpc.v1.cri.
# Shims put their sockets in /run/containerd/s whatever the configuration says.
_e2e_config_16() {
  cat <<EOF
version = 2
root = "$E2E_DIR/root"
state = "$E2E_DIR/state"

[grpc]
  address = "$E2E_ADDRESS"

[ttrpc]
  address = "$E2E_ADDRESS.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$E2E_SANDBOX_IMAGE"
  # This kernel's bounding set lacks CAP_SYS_RESOURCE: without this RunPodSandbox fails
  # with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Pod network namespaces (if a test makes one) go under E2E_DIR, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$E2E_DIR/cni/bin"
    conf_dir = "$E2E_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
EOF
  _e2e_config_execguard io.containerd.grpc.v1.cri
}

# containerd 2.3: config version 3, where the CRI plugin's settings are split between
# io.containerd.cri.v1.runtime and io.containerd.cri.v1.images (internal/cri/config in
# containerd's source) and shims put their sockets in the shim manager's socket_dir.
_e2e_config_23() {
  cat <<EOF
version = 3
root = "$E2E_DIR/root"
state = "$E2E_DIR/state"
temp = "$E2E_DIR/tmp"

[grpc]
  address = "$E2E_ADDRESS"

[ttrpc]
  address = "$E2E_ADDRESS.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_DIR/opt"

# Without it the shims' sockets go to /run/containerd/s (core/runtime/v2/shim_manager.go).
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$E2E_DIR/s"

# NRI would listen on /var/run/nri/nri.sock and read plugins from /opt/nri and /etc/nri:
# no test needs it.
[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.cri.v1.images"]
  # 1.x's sandbox_image (internal/cri/config/config.go, ImageConfig.PinnedImages).
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$E2E_SANDBOX_IMAGE"

[plugins."io.containerd.cri.v1.runtime"]
  # This kernel's bounding set lacks CAP_SYS_RESOURCE: without this RunPodSandbox fails
  # with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Pod network namespaces (if a test makes one) go under E2E_DIR, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # CDI specs are read from /etc/cdi and /var/run/cdi otherwise.
  cdi_spec_dirs = ["$E2E_DIR/cdi"]
  [plugins."io.containerd.cri.v1.runtime".cni]
    # bin_dir is deprecated in 2.x.
    bin_dirs = ["$E2E_DIR/cni/bin"]
    conf_dir = "$E2E_DIR/cni/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
EOF
  _e2e_config_execguard io.containerd.cri.v1.runtime
}

# The execguard runtime in the CRI plugin PLUGIN, unless E2E_CONFIGURE is to register it.
_e2e_config_execguard() {
  [ -n "${E2E_CONFIGURE:-}" ] && return 0
  cat <<EOF
    [plugins."$1".containerd.runtimes.execguard]
      runtime_type = "io.containerd.execguard.v2"
      # CRI passes pod annotations into the OCI spec only for runtimes that list them.
      pod_annotations = ["execguard.dev/*"]
EOF
}

# ctr against the private containerd. IO fifos of `run` and `task start|exec|attach` go
# under E2E_DIR/fifo instead of /run/containerd/fifo, where nothing would tell them apart
# from another containerd's.
ectr() {
  if [ -z "${E2E_ADDRESS:-}" ]; then
    _e2e_error "ectr: no private containerd (call e2e_start first)"
    return 1
  fi
  local globals=() args=("$@")
  # ctr's global options come before the command.
  while [ ${#args[@]} -gt 0 ] && [[ ${args[0]} == -* ]]; do
    case ${args[0]} in
      -n | --namespace | -a | --address | --timeout | --connect-timeout)
        globals+=("${args[@]:0:2}")
        args=("${args[@]:2}")
        ;;
      *)
        globals+=("${args[0]}")
        args=("${args[@]:1}")
        ;;
    esac
  done
  local fifo=(--fifo-dir "$E2E_DIR/fifo")
  case ${args[0]:-} in
    run) args=(run "${fifo[@]}" "${args[@]:1}") ;;
    t | task | tasks)
      case ${args[1]:-} in
        exec | start | attach) args=("${args[@]:0:2}" "${fifo[@]}" "${args[@]:2}") ;;
      esac
      ;;
  esac
  # Through ctr's environment variables, not its flags: ctr refuses -n next to --namespace.
  CONTAINERD_ADDRESS=$E2E_ADDRESS CONTAINERD_NAMESPACE=$E2E_NAMESPACE CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 \
    "$E2E_CONTAINERD_BIN/ctr" "${globals[@]}" "${args[@]}"
}

# ---------------------------------------------------------------------------------------
# Stopping and checking that nothing is left

e2e_stop() {
  # In a subshell without errexit and the caller's ERR trap: every step runs whatever the
  # one before it did, and the expected failures of the sweep (kernel threads, vanished
  # processes, directories still in use) are neither fatal nor reported.
  (
    set +eE
    trap - ERR
    _e2e_stop_instance
  )
}

_e2e_stop_instance() {
  local dir=${E2E_DIR:-} pid
  if [ -z "$dir" ] || [ ! -e "$dir/containerd.pid" ]; then
    return 0 # never started, or already stopped
  fi
  pid=$(<"$dir/containerd.pid")

  # Every "namespace id" this instance knows of, for the state it leaves outside E2E_DIR.
  local ids=
  if _e2e_alive "$pid" && [[ $(_e2e_cmdline "$pid") == *"$dir/config.toml"* ]]; then
    ids=$(_e2e_containerd_containers)
    _e2e_remove_containers
    kill -TERM "$pid"
    _e2e_wait_gone 10 "$pid" || kill -KILL "$pid"
    _e2e_wait_gone 5 "$pid"
  fi
  # Task state directories outlive a crashed containerd and name the rest.
  local bundle
  for bundle in "$dir"/state/io.containerd.runtime.v2.task/*/*; do
    [ -d "$bundle" ] && ids+=$'\n'"$(basename "$(dirname "$bundle")") $(basename "$bundle")"
  done
  ids=$(sort -u <<<"$ids")

  # Shims whose containerd went away before they were told to stop, or that containerd
  # forgot (a shim whose start failed: containerd deleted its container), and their
  # containers (the shim is their subreaper, so its descendants are the containers'
  # processes). A shim's arguments name its container, for the state it leaves.
  local strays
  strays=$(_e2e_processes "$dir")
  if [ -n "$strays" ]; then
    # shellcheck disable=SC2086 # one pid per word
    ids=$(sort -u <<<"$ids"$'\n'"$(_e2e_shim_containers $strays)")
    # shellcheck disable=SC2086
    strays=$(_e2e_with_descendants $strays)
    _e2e_say "killing what containerd left running: ${strays//$'\n'/ }"
    # shellcheck disable=SC2086
    kill -KILL $strays 2>/dev/null
    # shellcheck disable=SC2086
    _e2e_wait_gone 5 $strays
  fi

  _e2e_unmount "$dir"
  _e2e_remove_outside_state "$ids"
  if _e2e_check_clean "$dir" "$ids"; then
    rm -f "$dir/containerd.pid"
    return 0
  fi
  _e2e_error "e2e_stop left the above behind (containerd log: $dir/containerd.log)"
  return 1
}

# ctr against the private containerd for e2e_start and e2e_stop, bounded: a hung shim must
# not hang the caller (e2e_stop kills it afterwards).
_e2e_ctr() {
  CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 timeout 30 "$E2E_CONTAINERD_BIN/ctr" --address "$E2E_ADDRESS" --connect-timeout 5s "$@" 2>/dev/null
}

# "namespace id" of every container containerd has.
_e2e_containerd_containers() {
  local ns
  for ns in $(_e2e_ctr namespaces ls -q); do
    _e2e_ctr -n "$ns" containers ls -q | sed "s|^|$ns |"
  done
}

# Kills and deletes every task and container, in every namespace, through containerd, so
# that each shim cleans up after itself (its socket, runc state, cgroup and rootfs mount).
# A task may vanish before its turn: the containers of a CRI pod share the sandbox's shim,
# and deleting the sandbox's task stops that shim, which takes the pod's other tasks along.
_e2e_remove_containers() {
  local ns id
  for ns in $(_e2e_ctr namespaces ls -q); do
    for id in $(_e2e_ctr -n "$ns" tasks ls -q); do
      _e2e_ctr -n "$ns" tasks delete --force "$id" >/dev/null ||
        ! _e2e_ctr -n "$ns" tasks ls -q | grep -qxF "$id" ||
        _e2e_say "could not delete task $ns/$id through containerd"
    done
    for id in $(_e2e_ctr -n "$ns" containers ls -q); do
      _e2e_ctr -n "$ns" containers delete "$id" >/dev/null ||
        _e2e_say "could not delete container $ns/$id through containerd"
    done
  done
}

# "namespace id" of each PID that is a shim: `-namespace NS -id ID` in its arguments.
_e2e_shim_containers() {
  local pid args i ns id
  for pid in "$@"; do
    { mapfile -d '' -t args <"/proc/$pid/cmdline"; } 2>/dev/null || continue
    ns= id=
    for ((i = 0; i + 1 < ${#args[@]}; i++)); do
      case ${args[i]} in
        -namespace) ns=${args[i + 1]} ;;
        -id) id=${args[i + 1]} ;;
      esac
    done
    [ -n "$ns" ] && [ -n "$id" ] && echo "$ns $id"
  done
  return 0
}

# True if PID is a live process (a zombie is dead: it only waits to be reaped, and PID 1
# here reaps lazily).
_e2e_alive() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# PID's command line, its arguments joined by spaces.
_e2e_cmdline() {
  local args
  { mapfile -d '' -t args <"/proc/$1/cmdline"; } 2>/dev/null || return 1
  echo "${args[*]}"
}

# Waits up to SECONDS for every PID to be gone; false if one is still alive.
_e2e_wait_gone() {
  local seconds=$1 tries pid
  shift
  for ((tries = 0; tries < seconds * 10; tries++)); do
    for pid in "$@"; do
      _e2e_alive "$pid" && break
      pid=
    done
    [ -z "$pid" ] && return 0
    sleep 0.1
  done
  return 1
}

# Pids of the processes that belong to the instance in DIR: those whose command line
# mentions DIR (containerd, its shims: `-address DIR/containerd.sock`) and those whose root
# mount comes from DIR (containers: their root is a snapshot under DIR/root, named in
# their mountinfo; found even when their shim died and left them to init).
# /proc/PID/root cannot tell: after pivot_root it reads as "/". This shell and its
# ancestors are left out: a test runner may have DIR in its arguments.
_e2e_processes() {
  local dir=$1 mine=" " p=$BASHPID
  while [ "$p" -gt 1 ] 2>/dev/null; do
    mine+="$p "
    p=$(_e2e_ppid "$p")
  done
  # Builtins only in this loop: it visits every process on the machine.
  local proc args
  for proc in /proc/[0-9]*; do
    p=${proc#/proc/}
    [[ $mine == *" $p "* ]] && continue
    { mapfile -d '' -t args <"$proc/cmdline"; } 2>/dev/null || continue
    if [[ "${args[*]}" == *"$dir"* ]] || _e2e_root_under "$p" "$dir"; then
      _e2e_alive "$p" && echo "$p"
    fi
  done
  return 0
}

# PID's parent, from /proc/PID/stat: "PID (COMMAND) STATE PPID ...", where COMMAND may
# hold spaces and parentheses.
_e2e_ppid() {
  local stat ppid
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  read -r _ ppid _ <<<"${stat##*) }"
  echo "$ppid"
}

# True if PID's root file system is mounted from under DIR. Only processes in another
# mount namespace are read: a process in this one has this one's root.
_e2e_root_under() {
  [ -e "/proc/$1/ns/mnt" ] && [ ! "/proc/$1/ns/mnt" -ef /proc/self/ns/mnt ] &&
    awk -v dir="$2/" '$5 == "/" && index($0, dir) { found = 1 } END { exit !found }' \
      "/proc/$1/mountinfo" 2>/dev/null
}

# The given pids and all their descendants.
_e2e_with_descendants() {
  local proc stat ppid
  for proc in /proc/[0-9]*; do
    { read -r stat <"$proc/stat"; } 2>/dev/null || continue
    read -r _ ppid _ <<<"${stat##*) }"
    echo "${proc#/proc/} $ppid"
  done | awk -v roots="$*" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2 }
    END {
      do {
        grew = 0
        for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 }
      } while (grew)
      for (p in keep) print p
    }'
}

# Mount points under DIR, deepest first. mountinfo escapes spaces as \040.
_e2e_mounts_under() {
  awk -v dir="$1" '{
    m = $5; gsub(/\\040/, " ", m)
    if (m == dir || index(m, dir "/") == 1) print m
  }' /proc/self/mountinfo | sort -r
}

_e2e_unmount() {
  local dir=$1 m
  for _ in 1 2 3; do
    local mounts
    mounts=$(_e2e_mounts_under "$dir")
    [ -z "$mounts" ] && return 0
    while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done <<<"$mounts"
  done
}

# The places of the shim sockets of container ID in namespace NS: <socket dir>/<sha256 of
# "ADDRESS/NS/KEY">, where KEY is ID for the runc shim and ID-execguard for the execguard
# shim in front of it (shim/src/lib.rs, start_shim). The shims of containerd 1.6 put them
# in /run/containerd/s whatever containerd's own state directory is
# (runtime/v2/shim/util_unix.go, SocketAddress). containerd 2.3 tells its shims the
# socket_dir of its configuration, E2E_DIR/s here (pkg/shim/util_unix.go,
# CreateSocketAddress), but a shim that does not read it (one that speaks only 1.x's start
# protocol) still uses /run/containerd/s.
e2e_shim_sockets() {
  local key hash
  for key in "$2" "$2-execguard"; do
    hash=$(printf '%s' "$E2E_ADDRESS/$1/$key" | sha256sum)
    [ "$E2E_CONTAINERD" = 1.6 ] || echo "$E2E_DIR/s/${hash%% *}"
    echo "/run/containerd/s/${hash%% *}"
  done
}

# What a killed shim could not clean up outside E2E_DIR: its socket, runc's state for the
# container (runc's root is /run/containerd/runc/NS for the runc shim) and the container's
# cgroups (/NS/ID for ctr's containers, then their parent /NS once empty). The processes
# are gone by now, so an rmdir of their cgroup succeeds.
_e2e_remove_outside_state() {
  local ns id cgroup
  while read -r ns id; do
    [ -n "$id" ] || continue
    e2e_shim_sockets "$ns" "$id" | xargs rm -f
    if [ -e "/run/containerd/runc/$ns/$id" ]; then
      runc --root "/run/containerd/runc/$ns" delete --force "$id" >/dev/null 2>&1
      rm -rf "/run/containerd/runc/$ns/$id"
    fi
    for cgroup in /sys/fs/cgroup/*/"$ns/$id"; do
      [ -d "$cgroup" ] && rmdir "$cgroup" 2>/dev/null
    done
  done <<<"$1"
  for ns in $(echo "$1" | cut -d' ' -f1 | sort -u); do
    rmdir "/run/containerd/runc/$ns" 2>/dev/null
    for cgroup in /sys/fs/cgroup/*/"$ns"; do
      [ -d "$cgroup" ] && rmdir "$cgroup" 2>/dev/null
    done
  done
  # The shims' directories that were not there before this instance (listed deepest first),
  # if no other containerd uses them by now: rmdir only removes them empty.
  local shared
  while IFS= read -r shared; do
    rmdir "$shared" 2>/dev/null
  done <"$E2E_DIR/shared-dirs"
  return 0
}

# Prints what is left of this instance and fails if anything is.
_e2e_check_clean() {
  local dir=$1 ids=$2 left=0 p ns id path
  for p in $(_e2e_processes "$dir"); do
    echo "!! e2e: process left: $p $(_e2e_cmdline "$p")" >&2
    left=1
  done
  while IFS= read -r path; do
    [ -n "$path" ] || continue
    echo "!! e2e: mount left: $path" >&2
    left=1
  done <<<"$(_e2e_mounts_under "$dir")"
  while read -r ns id; do
    [ -n "$id" ] || continue
    for path in $(e2e_shim_sockets "$ns" "$id") "/run/containerd/runc/$ns/$id" /sys/fs/cgroup/*/"$ns/$id"; do
      if [ -e "$path" ]; then
        echo "!! e2e: left: $path (container $ns/$id)" >&2
        left=1
      fi
    done
  done <<<"$ids"
  # containerd 2.3's socket_dir is this instance's alone: anything in it is left.
  if [ "$E2E_CONTAINERD" != 1.6 ]; then
    for path in "$dir"/s/*; do
      [ -e "$path" ] || continue
      echo "!! e2e: left: $path (a shim socket)" >&2
      left=1
    done
  fi
  return $left
}

# ---------------------------------------------------------------------------------------
# The test image

e2e_build_image() {
  local name=${1:?usage: e2e_build_image NAME}
  _e2e_import "$name" tools && export E2E_IMAGE=$name
}

e2e_build_busybox_image() {
  local name=${1:?usage: e2e_build_busybox_image NAME}
  _e2e_import "$name" busybox && export E2E_BUSYBOX_IMAGE=$name
}

# Builds (or takes from the cache) the image NAME of KIND (tools, busybox) and imports it
# into the tests' namespace and k8s.io.
_e2e_import() {
  local name=$1 kind=$2
  if [ -z "${E2E_ADDRESS:-}" ]; then
    _e2e_error "building $name: no private containerd (call e2e_start first)"
    return 1
  fi
  local tar
  tar=$(_e2e_image_tar "$name" "$kind") || return 1
  # Both at once: unpacking the layer takes most of the time, once per namespace.
  local ns failed=0
  declare -A imports
  for ns in "$E2E_NAMESPACE" k8s.io; do
    ectr -n "$ns" images import "$tar" >/dev/null &
    imports[$ns]=$!
  done
  for ns in "${!imports[@]}"; do
    if ! wait "${imports[$ns]}"; then
      _e2e_error "importing $tar into namespace $ns failed"
      failed=1
    fi
  done
  [ $failed = 0 ]
}

# Path of the OCI layout tar holding NAME (and, for the tools image, the sandbox image);
# built once and reused while nothing it is made of changes (this file, the names, the
# packages' versions).
_e2e_image_tar() {
  local name=$1 kind=$2 cache key
  cache=${E2E_IMAGE_CACHE:-$(_e2e_repo)/target/e2e}
  key=$({
    cat "${BASH_SOURCE[0]}" "$(_e2e_repo)"/tests/e2e/programs/*.c "$(_e2e_repo)/cli/tests/programs/exec_race.c" "$(_e2e_repo)/cli/tests/programs/io_uring.c" \
      "$(_e2e_repo)/cli/tests/programs/stall_exec.c"
    echo "$name $kind $_E2E_SANDBOX_IMAGE"
    dpkg-query -W busybox-static dash netcat-openbsd nmap socat libc6
  } | sha256sum)
  local tar=$cache/image-${key:0:16}.tar
  if [ -s "$tar" ]; then
    echo "$tar"
    return 0
  fi
  mkdir -p "$cache" || return 1
  local work
  work=$(mktemp -d "$cache/build.XXXXXX") || return 1
  if "_e2e_rootfs_$kind" "$work/rootfs" && _e2e_etc "$work/rootfs" && _e2e_oci_layout "$work" "$name" "$kind" &&
    mv "$work/image.tar" "$tar"; then
    rm -rf "$work"
    echo "$tar"
    return 0
  fi
  rm -rf "$work"
  _e2e_error "building the $kind test image failed"
  return 1
}

# A minimal root file system in ROOT: dash as /bin/sh, busybox applets, the real network
# tools (netcat-openbsd as /usr/bin/nc, nmap with its data, socat) and the shared
# libraries they load. Not merged-/usr: /bin and /lib are real directories, and each
# library goes where ldd finds it on this machine (the loader searches
# /lib/x86_64-linux-gnu by default, so no ld.so.cache is needed).
_e2e_rootfs_tools() {
  local root=$1 applet
  mkdir -p "$root"/{bin,dev,etc,proc,root,run,sys,tmp,usr/bin,usr/share,var/tmp} || return 1
  chmod 1777 "$root/tmp" "$root/var/tmp"

  cp /usr/bin/dash /usr/bin/busybox "$root/bin/" || return 1
  ln -s dash "$root/bin/sh"
  local have
  have=" $(/usr/bin/busybox --list | tr '\n' ' ') "
  for applet in "${_E2E_APPLETS[@]}"; do
    if [[ $have != *" $applet "* ]]; then
      _e2e_error "busybox has no $applet applet"
      return 1
    fi
    ln -s busybox "$root/bin/$applet"
  done

  cp /usr/bin/nc.openbsd /usr/bin/nmap /usr/bin/socat "$root/usr/bin/" || return 1
  ln -s nc.openbsd "$root/usr/bin/nc"
  # execveat for the seccomp profile tests, fileless execution, the exec storm of
  # scripts/reliability and the exec loop, socket() loop and nanosecond clock of
  # scripts/bench; static, so that they need no library of their own.
  local program
  for program in fexec memexec execloop socketloop clockns; do
    gcc -static -O2 -o "$root/usr/bin/$program" "$(_e2e_repo)/tests/e2e/programs/$program.c" || return 1
  done
  # The exec race of the supervisor's tests, for the socket gate in a container.
  gcc -static -O2 -pthread -o "$root/usr/bin/exec_race" "$(_e2e_repo)/cli/tests/programs/exec_race.c" || return 1
  gcc -static -O2 -o "$root/usr/bin/io_uring" "$(_e2e_repo)/cli/tests/programs/io_uring.c" || return 1
  # An exec whose argument the supervisor cannot read before the deadline.
  gcc -static -O2 -pthread -o "$root/usr/bin/stall_exec" "$(_e2e_repo)/cli/tests/programs/stall_exec.c" || return 1
  cp -a /usr/share/nmap "$root/usr/share/" || return 1

  local program lib
  for lib in $(for program in dash nc.openbsd nmap socat; do ldd "/usr/bin/$program"; done |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u); do
    mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib" || return 1
  done
}

# Alpine's layout, made from Debian's static busybox: /bin/busybox and, at the place
# `busybox --list-full` gives, a symlink to it for every applet (`busybox --install -s`):
# sh, sleep and ls as much as nc, telnet and wget.
_e2e_rootfs_busybox() {
  local root=$1 applet
  mkdir -p "$root"/{bin,dev,etc,proc,root,run,sys,tmp,usr/bin,var/tmp} || return 1
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp /usr/bin/busybox "$root/bin/busybox" || return 1
  for applet in $(/usr/bin/busybox --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")" && ln -s /bin/busybox "$root/$applet" || return 1
  done
}

# The files of /etc that both images need.
_e2e_etc() {
  local root=$1
  cp /etc/services /etc/protocols "$root/etc/" || return 1
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\nservices: files\nprotocols: files\n' >"$root/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hostname"
}

# Packs WORK/rootfs into WORK/image.tar, an OCI image layout on one uncompressed layer:
# NAME (command /bin/sh) and, for the tools image, the pod sandbox image (sleep
# infinity). Each image is named by the io.containerd.image.name annotation, which
# `ctr images import` reads. Fixed owners and times make the layer's digest reproducible.
_e2e_oci_layout() {
  local work=$1 name=$2 kind=$3
  local blobs=$work/layout/blobs/sha256
  mkdir -p "$blobs" || return 1
  tar --create --file "$work/layer.tar" --directory "$work/rootfs" \
    --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 . || return 1
  local layer
  layer=$(_e2e_blob "$blobs" <"$work/layer.tar") || return 1
  rm -f "$work/layer.tar"

  local images=("$name") image cmd manifests=()
  [ "$kind" = tools ] && images+=("$_E2E_SANDBOX_IMAGE")
  for image in "${images[@]}"; do
    if [ "$image" = "$_E2E_SANDBOX_IMAGE" ]; then cmd='"sleep","infinity"'; else cmd='"/bin/sh"'; fi
    local config manifest
    config=$(printf '%s' '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",'\
'"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],'\
'"Cmd":['"$cmd"'],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["'"${layer% *}"'"]}}' |
      _e2e_blob "$blobs") || return 1
    manifest=$(printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'"${config% *}"'","size":'"${config#* }"'},'\
'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"'"${layer% *}"'","size":'"${layer#* }"'}]}' |
      _e2e_blob "$blobs") || return 1
    manifests+=('{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"'"${manifest% *}"'",'\
'"size":'"${manifest#* }"',"platform":{"architecture":"amd64","os":"linux"},'\
'"annotations":{"io.containerd.image.name":"'"$image"'"}}')
  done
  local IFS=,
  printf '{"schemaVersion":2,"manifests":[%s]}' "${manifests[*]}" >"$work/layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
  tar --create --file "$work/image.tar" --directory "$work/layout" oci-layout index.json blobs
}

# Stores standard input as a blob under BLOBS; prints "sha256:DIGEST SIZE".
_e2e_blob() {
  local blobs=$1 tmp digest size
  tmp=$(mktemp "$blobs/.in.XXXXXX") || return 1
  cat >"$tmp" || return 1
  digest=$(sha256sum <"$tmp") || return 1
  digest=${digest%% *}
  size=$(stat -c %s "$tmp")
  mv "$tmp" "$blobs/$digest" && echo "sha256:$digest $size"
}
