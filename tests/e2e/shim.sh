#!/usr/bin/env bash
# End-to-end tests of containerd-shim-execguard-v2 against a private containerd
# (tests/e2e/env.sh: Debian's 1.6, or 2.3.4 with E2E_CONTAINERD=2.3) and Debian's runc,
# with real containers of the test image (dash, busybox applets, Debian's nc, nmap and
# socat). Needs root and the binaries built in target/debug. Prints one line per check and
# "N passed, M failed"; exits non-zero if any check failed or could not run.
set -Euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=env.sh
. tests/e2e/env.sh

passed=0
failed=0
# check NAME COMMAND...: runs COMMAND, counts it.
check() {
  local name=$1
  shift
  if "$@"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
  fi
}
# contains TEXT WANTED: TEXT has WANTED in it (and says what it had when not).
contains() {
  if [[ $1 == *"$2"* ]]; then return 0; fi
  echo "     wanted \"$2\" in: ${1:0:600}" >&2
  return 1
}
lacks() {
  if [[ $1 != *"$2"* ]]; then return 0; fi
  echo "     did not want \"$2\" in: ${1:0:600}" >&2
  return 1
}
# Every container the tests create, for the checks that nothing of theirs is left.
containers="enforce1 top1 memfd1 race1 serve1 uring1 uring2 long added1 exit3 off0 monitor0 monitor1 off1 bad1 profile1 noprofile1 profile2 busybox1 busybox2 chroot1 chroot2 configpath1 reload1 sinks1 broken1 fallback0 fallback1 fallback2 fallback3 full1 panic1 panic2 restart1 runckill1 lost1 metrics1"
# agent_socket ID: where the shim listens for container ID's seccomp listener
# (shim/src/task.rs agent_path: the first 12 bytes of sha256(NAMESPACE/ID), in hex).
agent_socket() { local hash; hash=$(printf '%s' "$E2E_NAMESPACE/$1" | sha256sum); echo "/run/execguard/${hash:0:24}.sock"; }
agent_sockets_left() { local id; for id in "$@"; do [ -e "$(agent_socket "$id")" ] && echo "$id"; done; return 0; }
# remove ID: kills container ID's task, waits until it stopped, deletes it and the container.
remove() {
  ectr task kill -s KILL "$1" >/dev/null 2>&1
  for _ in $(seq 50); do [[ $(ectr task ls 2>&1 | grep "$1") == *STOPPED* ]] && break; sleep 0.1; done
  ectr task delete "$1" >/dev/null 2>&1
  ectr container delete "$1" >/dev/null 2>&1
}
# printed TEXT: TEXT without the tools' and the shell's error lines, which ctr passes on
# from stderr in no fixed order with stdout.
printed() { grep -v -E '^(sh|nc|nmap|socat): ' <<<"$1" || true; }
# alerts_for CONTAINER: the alert records of one container.
alerts_for() { grep -F "\"id\":\"$1\"" "$alerts" || true; }
count() { if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | wc -l; fi; }

bin_dir=${CARGO_TARGET_DIR:-target}/debug
for binary in "$bin_dir/containerd-shim-execguard-v2" "$bin_dir/execguard"; do
  [ -x "$binary" ] || { echo "!! $binary is missing: build it first (cargo build --workspace)" >&2; exit 1; }
done

e2e_install
work=$(mktemp -d /tmp/execguard-e2e.XXXXXX)
trap 'e2e_stop; rm -rf "$work"' EXIT
alerts=$work/alerts.jsonl
export EXECGUARD_CONFIG=$work/config.toml
# The shim's fault injection (debug builds only): an exec of this path panics its
# inspection, as a bug would.
export EXECGUARD_TEST_PANIC_ON_EXEC=/tmp/panic-here
# Every attempt is written (no repeat window), so that records can be counted.
metrics_dir=$work/metrics
printf 'repeat_window_secs = 0\n[alerts]\nfile = "%s"\n[metrics]\ntextfile_dir = "%s"\n' "$alerts" "$metrics_dir" > "$EXECGUARD_CONFIG"
PATH=$(realpath "${CARGO_TARGET_DIR:-target}")/debug:$PATH e2e_start "$work/containerd" || exit 1
e2e_build_image execguard.test/e2e:latest || exit 1
run() { ectr run --rm --runtime io.containerd.execguard.v2 "$@"; }
tools='nc -w1 192.0.2.1 9; echo nc=$?; nmap --version >/dev/null; echo nmap=$?; socat -V >/dev/null; echo socat=$?'

echo "== enforce (the default policy's mode)"
out=$(run "$E2E_IMAGE" enforce1 sh -c "ls / >/dev/null && echo ls=ok; cat /etc/passwd >/dev/null && echo cat=ok; $tools" 2>&1)
check "ls and cat work" contains "$(printed "$out")" $'ls=ok\ncat=ok'
check "nc fails from the entrypoint" contains "$out" "nc: Operation not permitted"
for tool in nc nmap socat; do check "$tool is refused (126)" contains "$out" "$tool=126"; done
records=$(alerts_for enforce1)
check "one alert record per attempt" test "$(count "$records")" -eq 3
check "records carry the path, args and parent" contains "$records" '"executable":"/usr/bin/nc.openbsd","name":"nc","args":["nc","-w1","192.0.2.1","9"]'
check "records name the parent shell" contains "$records" '"parent":{"executable":"/bin/dash"'
check "records are blocks by the policy" contains "$records" '"decision":"block","rule":{"id":"falco.launch_suspicious_network_tool"'
# The lineage stops at the container: the entrypoint's parent is runc's, not the container's.
ectr run --rm --runtime io.containerd.execguard.v2 "$E2E_IMAGE" top1 nc -w1 192.0.2.1 9 >/dev/null 2>&1
records=$(alerts_for top1)
check "the entrypoint is reported" contains "$records" '"args":["nc","-w1","192.0.2.1","9"]'
check "with no host process as its parent" lacks "$records" '"parent"'


echo "== fileless execution through the container's own procfs, in any spelling"
# The supervisor has no pid in the container's pid namespace: /proc/self there is the
# calling process's, and every way of naming the memfd must reach it.
spellings='/proc/self/fd/%d //proc/./self//fd/%d /proc/self/../thread-self/fd/%d /dev/fd/%d'
script=''
for spelling in $spellings; do script+="memexec $spelling /usr/bin/nc.openbsd -w1 192.0.2.1 9; echo \"$spelling=\$?\"; "; done
out=$(run "$E2E_IMAGE" memfd1 sh -c "$script" 2>&1)
for spelling in $spellings; do check "a memfd copy of nc through $spelling is refused" contains "$out" "$spelling=126"; done
records=$(alerts_for memfd1)
check "reported as fileless" test "$(printf '%s\n' "$records" | grep -c '"fileless":true')" -eq 4
check "and as the file nc" test "$(printf '%s\n' "$records" | grep -c '"identity":"nc"')" -eq 4

echo "== the socket gate: a raced exec never reaches the network"
# A policy that blocks netcat unless it is asked for its help, and a loopback listener that
# logs every connection it accepts. Each race flips the path (thread, CLONE_VM child), the
# file (a symlink swap) or argv between the allowed and the blocked form, 3000 times.
# argv[0] is "true": /bin/true is busybox here, which picks its applet from argv[0].
cat > "$work/race-policy.toml" <<'TOML'
mode = "enforce"
[[rules]]
id = "t.no_netcat"
name = "no netcat"
description = "netcat ran"
severity = "high"
action = "block"
when.name = ["nc", "nc.*"]
  [[rules.exceptions]]
  name = "help"
  when.args_any = ["-h"]
TOML
printf 'policy = "%s"\nrepeat_window_secs = 0\n[alerts]\nfile = "%s"\n' "$work/race-policy.toml" "$work/race-alerts.jsonl" > "$work/race.toml"
race_script='socat -d -d TCP-LISTEN:9999,bind=127.0.0.1,fork,reuseaddr /dev/null 2>/tmp/listener.log &
  sleep 0.5; cd /tmp
  exec_race thread 3000 /bin/true /usr/bin/nc.openbsd true 127.0.0.1 9999 2>/dev/null
  exec_race clone-vm 3000 /bin/true /usr/bin/nc.openbsd true 127.0.0.1 9999 2>/dev/null
  exec_race swap 3000 /bin/true /usr/bin/nc.openbsd true 127.0.0.1 9999 2>/dev/null
  exec_race argv 3000 -h -v /usr/bin/nc.openbsd nc 127.0.0.1 9999 2>/dev/null
  sleep 0.5; echo "connections=$(grep -c "accepting connection" /tmp/listener.log)"'
out=$(run --runtime-config-path "$work/race.toml" "$E2E_IMAGE" race1 sh -c "$race_script" 2>&1)
check "12000 racing attempts ran" test "$(printf '%s\n' "$out" | grep -c 'attempts=3000')" -eq 4
check "and no connection reached the listener" contains "$out" "connections=0"
won=$(grep -c '"exec_race"' "$work/race-alerts.jsonl" || true)
echo "     races won at the exec and stopped at their socket: $won"
check "every race won at the exec was stopped at its socket" test "$(grep '"exec_race"' "$work/race-alerts.jsonl" | grep -vc '"decision":"block"')" -eq 0

# Ordinary network use under the gate: a server, a client that resolves localhost through
# glibc, a connection held open for a second.
serve_script='socat TCP-LISTEN:9998,bind=127.0.0.1,fork,reuseaddr SYSTEM:"echo hello" &
  sleep 0.5; socat -u TCP:localhost:9998 - ; (sleep 1; echo x) | socat - TCP:127.0.0.1:9998'
out=$(run --runtime-config-path "$work/race.toml" "$E2E_IMAGE" serve1 sh -c "$serve_script" 2>&1)
check "a server and its clients work under the gate" test "$(printf '%s\n' "$out" | grep -c hello)" -eq 2
out=$(run "$E2E_IMAGE" uring1 io_uring 2>&1)
check "io_uring is refused under the gate" contains "$out" "io_uring=EPERM"
check "and reported" contains "$(alerts_for uring1)" "io_uring_setup refused"
printf 'allow_io_uring = true\n[alerts]\nfile = "%s"\n' "$alerts" > "$work/uring.toml"
out=$(run --runtime-config-path "$work/uring.toml" "$E2E_IMAGE" uring2 io_uring 2>&1)
check "and allowed where the node allows it" contains "$out" "io_uring=ok"

echo "== exec sessions"
# A shell as PID 1 that ends on SIGTERM with its own status (PID 1 gets no default
# signal handling).
ectr run -d --runtime io.containerd.execguard.v2 "$E2E_IMAGE" long \
  sh -c 'trap "exit 42" TERM; while true; do sleep 0.2; done' >/dev/null
out=$(ectr task exec --exec-id s1 long sh -c "ls / >/dev/null && echo ls=ok; $tools" 2>&1)
check "an exec session without a tty is supervised" contains "$out" "ls=ok"
for tool in nc nmap socat; do check "$tool is refused in the session" contains "$out" "$tool=126"; done
tty_out=$(CONTAINERD_ADDRESS=$E2E_ADDRESS CONTAINERD_NAMESPACE=$E2E_NAMESPACE script -qec \
  "stty rows 41 cols 101; ctr task exec -t --exec-id s2 long sh -c 'sleep 1; stty size; nc -w1 192.0.2.1 9; echo nc=\$?'" /dev/null 2>&1 | tr -d '\r')
check "an exec session with a tty gets its size (resize_pty)" contains "$tty_out" "41 101"
check "an exec session with a tty is supervised" contains "$tty_out" "nc=126"
check "the tty session's alert says interactive" contains "$(alerts_for long)" '"interactive":true'
check "ctr task ps lists the container's processes" contains "$(ectr task ps long 2>&1)" "PID"
check "ctr task metrics answers" contains "$(ectr task metrics long 2>&1)" "memory"
ectr task pause long
check "pause" contains "$(ectr task ls 2>&1)" "PAUSED"
ectr task resume long
check "resume" contains "$(ectr task ls 2>&1 | grep long)" "RUNNING"
ectr task kill -s TERM long
for _ in $(seq 50); do [[ $(ectr task ls 2>&1 | grep long) == *STOPPED* ]] && break; sleep 0.1; done
check "kill with a signal stops the task" contains "$(ectr task ls 2>&1 | grep long)" "STOPPED"
ectr task delete long >/dev/null 2>&1
ectr container delete long
check "delete removes the container" lacks "$(ectr container ls -q 2>&1)" "long"

echo "== files added after the container started (in_image)"
out=$(run "$E2E_IMAGE" added1 sh -c 'cp /bin/dash /usr/bin/newtool && /usr/bin/newtool -c true; echo newtool=$?' 2>&1)
check "a new binary runs (the default policy alerts on it)" contains "$out" "newtool=0"
records=$(alerts_for added1)
check "and is reported as not in the image" contains "$records" '"in_image":false'
check "by Falco's drop-and-execute rule" contains "$records" '"decision":"alert","rule":{"id":"falco.drop_and_execute_new_binary"'
check "files of the image are in the image" contains "$(alerts_for enforce1)" '"in_image":true'

echo "== exit codes"
run "$E2E_IMAGE" exit3 sh -c 'exit 3'
check "a container's exit code comes through" test $? -eq 3

echo "== annotations may only raise supervision by default"
out=$(run --annotation execguard.dev/mode=off "$E2E_IMAGE" off0 sh -c "$tools" 2>&1)
check "mode off is refused, naming the annotation" contains "$out" 'execguard.dev/mode="off": lowers supervision'
check "and nothing ran" lacks "$out" "nc="
out=$(run --annotation execguard.dev/mode=monitor "$E2E_IMAGE" monitor0 true 2>&1)
check "monitor below the policy's enforce is refused" contains "$out" 'execguard.dev/mode="monitor": lowers supervision'

# A node that lets pods choose (overrides = "any"), through the ConfigPath option.
printf 'overrides = "any"\nrepeat_window_secs = 0\n[alerts]\nfile = "%s"\n' "$alerts" > "$work/any.toml"
echo "== monitor mode (annotation, overrides = any)"
out=$(run --runtime-config-path "$work/any.toml" --annotation execguard.dev/mode=monitor "$E2E_IMAGE" monitor1 sh -c "$tools" 2>&1)
check "the tools run in monitor mode" contains "$(printed "$out")" $'nc=1\nnmap=0\nsocat=0'
records=$(alerts_for monitor1)
check "and are alerted" test "$(count "$records")" -eq 3
check "as alerts that say enforce would block" contains "$records" "enforce mode would block"

echo "== mode off (annotation, overrides = any)"
out=$(run --runtime-config-path "$work/any.toml" --annotation execguard.dev/mode=off "$E2E_IMAGE" off1 sh -c "$tools" 2>&1)
check "mode off runs the tools unsupervised" contains "$(printed "$out")" $'nc=1\nnmap=0'
check "and reports nothing" test "$(count "$(alerts_for off1)")" -eq 0

echo "== a bad annotation fails Create with its name"
out=$(run --annotation execguard.dev/mode=loud "$E2E_IMAGE" bad1 true 2>&1)
check "the error names the annotation" contains "$out" 'execguard.dev/mode="loud"'

echo "== a container with its own seccomp profile keeps it"
cat > "$work/profile.json" <<'JSON'
{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
              {"names": ["execve", "execveat", "read"], "action": "SCMP_ACT_ALLOW"}]}
JSON
out=$(run --seccomp --seccomp-profile "$work/profile.json" "$E2E_IMAGE" profile1 sh -c "mkdir /x; echo mkdir=\$?; $tools" 2>&1)
check "the profile still denies mkdir" contains "$out" "mkdir=1"
check "its ALLOW rule for execve does not bypass the supervisor" contains "$out" "nc=126"
out=$(run "$E2E_IMAGE" noprofile1 sh -c 'mkdir /x; echo mkdir=$?; fexec /bin/true; echo fexec=$?' 2>&1)
check "without the profile mkdir works (the check above means something)" contains "$out" "mkdir=0"
check "and execveat runs (fexec)" contains "$out" "fexec=0"
# A profile that refuses execveat (EACCES, which execguard never answers) keeps refusing
# it; execve, which it allows, is still supervised.
cat > "$work/deny-execveat.json" <<'JSON'
{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
 "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
JSON
out=$(run --seccomp --seccomp-profile "$work/deny-execveat.json" "$E2E_IMAGE" profile2 \
  sh -c "fexec /bin/true; echo fexec=\$?; $tools" 2>&1)
check "the profile's denial of execveat stays" contains "$out" "fexec: execveat: Permission denied"
check "execve is still supervised under it" contains "$out" "nc=126"

echo "== an Alpine-style image: every command, sh and nc included, is one busybox"
e2e_build_busybox_image execguard.test/busybox:latest || exit 1
busybox_script='sleep 0 && echo sleep=ok; ls / >/dev/null && echo ls=ok; echo hi | wc -c >/dev/null && echo pipe=ok
  nc 192.0.2.1 9; echo nc=$?; telnet 192.0.2.1 9; echo telnet=$?; busybox nc 192.0.2.1 9; echo busybox-nc=$?'
out=$(run "$E2E_BUSYBOX_IMAGE" busybox1 sh -c "$busybox_script" 2>&1)
check "its shell and everyday applets run in enforce mode" contains "$(printed "$out")" $'sleep=ok\nls=ok\npipe=ok'
for tool in nc telnet busybox-nc; do check "its $tool applet is refused (126)" contains "$out" "$tool=126"; done
records=$(alerts_for busybox1)
check "records name the applet" contains "$records" '"name":"nc"'
check "and the file as busybox" contains "$records" '"identity":"busybox"'
check "only network applets are reported" test "$(printf '%s\n' "$records" | grep -cv -e '"name":"nc"' -e '"name":"telnet"')" -eq 0
out=$(run --annotation execguard.dev/mode=enforce "$E2E_BUSYBOX_IMAGE" busybox2 sleep 0 2>&1; echo "entrypoint=$?")
check "an applet as the entrypoint starts" contains "$out" "entrypoint=0"

echo "== a chroot cannot pass netcat off as ls"
# The supervisor opens a container's root once and resolves every exec in it until a
# process changes roots; the chroot must switch it to the process's own root. Judged in
# the container's root, /bin/ls would be busybox and allowed, and the copy of netcat would
# then fail to load its libraries (127).
chroot_nc='mkdir -p /tmp/r/bin && cp /usr/bin/nc.openbsd /tmp/r/bin/ls && ls / >/dev/null && chroot /tmp/r /bin/ls -h; echo chroot=$?; ls / >/dev/null && echo ls=ok'
out=$(run "$E2E_IMAGE" chroot1 sh -c "$chroot_nc" 2>&1)
check "without a profile: the chroot's /bin/ls is refused" contains "$out" "chroot=126"
check "and ls still runs after it" contains "$out" "ls=ok"
check "the record names the file netcat" contains "$(alerts_for chroot1)" '"identity":"nc"'
out=$(run --seccomp "$E2E_IMAGE" chroot2 sh -c "$chroot_nc" 2>&1)
check "under containerd's default profile (chroot allowed by a rule): refused" contains "$out" "chroot=126"

echo "== the ConfigPath runtime option"
# Its [delegate] too: the runc shim it names is a wrapper that notes each command.
# The runc shim of the containerd under test: 2.3's serves the task API v3 only.
runc_shim=$E2E_CONTAINERD_BIN/containerd-shim-runc-v2
printf '#!/bin/sh\necho "$*" >> %s\nexec %s "$@"\n' "$work/delegate.log" "$runc_shim" > "$work/delegate"
chmod +x "$work/delegate"
printf 'mode = "monitor"\n[alerts]\nfile = "%s"\n[delegate]\nbinary = "%s"\n' "$work/other-alerts.jsonl" "$work/delegate" > "$work/other.toml"
out=$(run --runtime-config-path "$work/other.toml" "$E2E_IMAGE" configpath1 sh -c "$tools" 2>&1)
check "ConfigPath's file applies" contains "$(cat "$work/other-alerts.jsonl" 2>/dev/null)" '"id":"configpath1"'
check "and its [delegate] runc shim runs the container" contains "$(cat "$work/delegate.log" 2>/dev/null)" "-id configpath1 -address"

echo "== a policy file missing, unreadable or broken at Create (policy_fallback)"
cp config/policy.toml "$work/fb-policy.toml"
fallback_config() { printf 'policy = "%s"\n%s\n[alerts]\nfile = "%s"\n' "$work/fb-policy.toml" "$1" "$alerts" > "$work/fb.toml"; }
fallback_config ''
run --runtime-config-path "$work/fb.toml" "$E2E_IMAGE" fallback0 true >/dev/null 2>&1
echo 'this is not = [a policy' >> "$work/fb-policy.toml"
out=$(run --runtime-config-path "$work/fb.toml" "$E2E_IMAGE" fallback1 true 2>&1)
check "by default the container is refused, naming the file and the place" contains "$out" "$work/fb-policy.toml:"
fallback_config 'policy_fallback = "last-good"'
out=$(run --runtime-config-path "$work/fb.toml" "$E2E_IMAGE" fallback2 sh -c "$tools" 2>&1)
check "last-good: the last version that compiled applies" contains "$out" "nc=126"
check "and the log says so" grep -qa "its last good copy applies" "$E2E_DIR/containerd.log"
rm "$work/fb-policy.toml"
fallback_config 'policy_fallback = "embedded"'
out=$(run --runtime-config-path "$work/fb.toml" "$E2E_IMAGE" fallback3 sh -c "$tools" 2>&1)
check "embedded: a missing file gets the embedded policy" contains "$out" "nc=126"
check "and the log says so" grep -qa "the embedded default policy applies" "$E2E_DIR/containerd.log"
copy=$(printf '%s' "$work/fb-policy.toml" | sha256sum)
rm -f "/run/execguard/last-good/${copy:0:32}.toml"

echo "== policy hot reload"
cp config/policy.toml "$work/live-policy.toml"
printf 'policy = "%s"\n[alerts]\nfile = "%s"\n' "$work/live-policy.toml" "$work/live-alerts.jsonl" > "$work/live.toml"
ectr run -d --runtime io.containerd.execguard.v2 --runtime-config-path "$work/live.toml" "$E2E_IMAGE" reload1 \
  sh -c 'trap "exit 0" TERM; while true; do sleep 0.2; done' >/dev/null
nc_in_reload1() { ectr task exec --exec-id "n$RANDOM" reload1 sh -c 'nc -w1 192.0.2.1 9; echo nc=$?' 2>&1; }
check "the policy file in force blocks nc" contains "$(nc_in_reload1)" "nc=126"
sed -i 's/^mode = "enforce"$/mode = "monitor"/' "$work/live-policy.toml"
start=$(date +%s%N)
until [[ $(nc_in_reload1) == *nc=1* ]] || [ $(($(date +%s%N) - start)) -gt 6000000000 ]; do sleep 0.2; done
took_ms=$((($(date +%s%N) - start) / 1000000))
echo "     the changed policy applied after $took_ms ms"
check "a changed policy file applies within 5 seconds, without a restart" test "$took_ms" -le 5000
echo 'this is not = [a policy' >> "$work/live-policy.toml"
sleep 3
check "a broken policy is rejected with its place in the log" grep -qa "not reloaded.*live-policy.toml:" "$E2E_DIR/containerd.log"
check "and the last good policy stays in force" contains "$(nc_in_reload1)" "nc=1"
remove reload1

echo "== alert sinks, and config.toml applied to a running pod"
ectr events > "$work/events.txt" 2>&1 &
events_pid=$!
printf 'repeat_window_secs = 0\n[alerts]\nfile = "%s"\n' "$work/sinks-a.jsonl" > "$work/sinks.toml"
# CAP_SYS_PTRACE: stall_exec's userfaultfd, below.
ectr run -d --cap-add CAP_SYS_PTRACE --runtime io.containerd.execguard.v2 --runtime-config-path "$work/sinks.toml" "$E2E_IMAGE" sinks1 \
  sh -c 'trap "exit 0" TERM; while true; do sleep 0.2; done' >/dev/null
nc_in_sinks1() { ectr task exec --exec-id "n$RANDOM" sinks1 sh -c "nc -w1 192.0.2.1 $1; echo nc=\$?" 2>&1; }
check "nc is blocked" contains "$(nc_in_sinks1 9)" "nc=126"
for _ in $(seq 50); do grep -q '/execguard/exec' "$work/events.txt" && break; sleep 0.1; done
events=$(grep -F '/execguard/exec' "$work/events.txt" || true)
echo "     ${events:0:300}"
check "ctr events shows the block on /execguard/exec" contains "$events" '"execguard.dev/decision":"block"'
check "naming the container, the rule and the command line" contains "$events" '"execguard.dev/command-line":"nc -w1 192.0.2.1 9","execguard.dev/container":"sinks1"'
check "with the whole ECS record" contains "$events" '\"event\":{\"kind\":\"alert\"'
kill "$events_pid" 2>/dev/null
wait "$events_pid" 2>/dev/null
printf 'repeat_window_secs = 3600\n[alerts]\nfile = "%s"\n' "$work/sinks-b.jsonl" > "$work/sinks.toml"
start=$(date +%s%N)
until [ -s "$work/sinks-b.jsonl" ] || [ $(($(date +%s%N) - start)) -gt 6000000000 ]; do
  nc_in_sinks1 10 >/dev/null
  sleep 0.2
done
took_ms=$((($(date +%s%N) - start) / 1000000))
echo "     the changed configuration applied after $took_ms ms"
check "a changed [alerts] file applies to the running pod within 5 seconds" test "$took_ms" -le 5000
for _ in 1 2 3; do nc_in_sinks1 11 >/dev/null; done
sleep 0.5
in_file() { grep -c "\"192.0.2.1\",\"$1\"" "$2" || true; }
check "and its repeat window: three identical blocks, one record" test "$(in_file 11 "$work/sinks-b.jsonl")" -eq 1
check "the old file gets nothing more" test "$(in_file 11 "$work/sinks-a.jsonl")" -eq 0
printf 'repeat_window_secs = "an hour"\n' > "$work/sinks.toml"
sleep 3
check "a broken configuration is rejected with its place in the log" grep -qa "configuration not reloaded.*sinks.toml:1:22" "$E2E_DIR/containerd.log"
nc_in_sinks1 12 >/dev/null
sleep 0.5
check "and the last good one stays in force" test "$(in_file 12 "$work/sinks-b.jsonl")" -eq 1
# HTTP sinks: a local collector, and a black hole that accepts and never answers.
mkdir -p "$work/http"
/usr/bin/python3 tests/e2e/http_receiver.py "$work/http" &
receiver_pid=$!
for _ in $(seq 50); do [ -s "$work/http/ports" ] && break; sleep 0.1; done
read -r collector black_hole < "$work/http/ports"
# time_ncs FIRST LAST: milliseconds for blocked nc execs to ports FIRST..LAST, one by one.
time_ncs() {
  local start port
  start=$(date +%s%N)
  for port in $(seq "$1" "$2"); do nc_in_sinks1 "$port" >/dev/null; done
  echo $((($(date +%s%N) - start) / 1000000))
}
before_ms=$(time_ncs 20 29)
printf 'repeat_window_secs = 0\n[alerts]\nfile = "%s"\n[[alerts.http]]\nurl = "http://127.0.0.1:%s/"\ntimeout_ms = 2000\nretries = 2\n[[alerts.http]]\nurl = "http://127.0.0.1:%s/"\n' \
  "$work/sinks-b.jsonl" "$black_hole" "$collector" > "$work/sinks.toml"
start=$(date +%s%N)
until [ -s "$work/http/posts" ] || [ $(($(date +%s%N) - start)) -gt 6000000000 ]; do
  nc_in_sinks1 30 >/dev/null
  sleep 0.2
done
check "[[alerts.http]] sinks apply to the running pod" test -s "$work/http/posts"
with_black_hole_ms=$(time_ncs 40 49)
echo "     10 blocked execs: $before_ms ms before, $with_black_hole_ms ms beside a sink that never answers (6 s per record)"
check "a sink that never answers does not slow execs" test "$with_black_hole_ms" -le $((before_ms * 2 + 1000))
sleep 0.5
check "nor keep the other HTTP sink from getting every record" test "$(grep -c '"192.0.2.1","4[0-9]"' "$work/http/posts")" -eq 10
check "nor the file" test "$(grep -c '"192.0.2.1","4[0-9]"' "$work/sinks-b.jsonl")" -eq 10
kill "$receiver_pid" 2>/dev/null
wait "$receiver_pid" 2>/dev/null
# The deadline and the fail action: an exec whose argument cannot be read for 1.5 s.
stall_in_sinks1() { ectr task exec --exec-id "s$RANDOM" sinks1 sh -c 'stall_exec 1500 /bin/echo echo stalled; echo rc=$?' 2>&1; }
printf 'deadline_ms = 300\nfail = "closed"\n' > "$work/sinks.toml"
sleep 3
# Fail-closed refuses it and kills the process, whose stalled read would hold a receiver.
check "a changed deadline and fail action apply to the running pod (closed)" contains "$(stall_in_sinks1)" "rc=137"
printf 'deadline_ms = 300\nfail = "open"\n' > "$work/sinks.toml"
sleep 3
check "and again (open)" contains "$(stall_in_sinks1)" $'stalled\nrc=0'
remove sinks1

printf 'mdoe = "monitor"\n' > "$work/broken.toml"
out=$(run --runtime-config-path "$work/broken.toml" "$E2E_IMAGE" broken1 true 2>&1)
check "a broken configuration fails Create naming its file and place" contains "$out" "$work/broken.toml:1:1: unknown field \`mdoe\`"

shim_of() { pgrep -f "containerd-shim-execguard-v2 -namespace $E2E_NAMESPACE -id $1 " || true; }
echo "== the alert disk full"
mkdir -p "$work/full"
mount -t tmpfs -o size=64k tmpfs "$work/full"
dd if=/dev/zero of="$work/full/filler" bs=4k 2>/dev/null || true
printf 'repeat_window_secs = 0\n[alerts]\nfile = "%s"\n[metrics]\ntextfile_dir = "%s"\n' "$work/full/alerts.jsonl" "$metrics_dir" > "$work/full.toml"
ectr run -d --runtime io.containerd.execguard.v2 --runtime-config-path "$work/full.toml" "$E2E_IMAGE" full1 \
  sh -c 'trap "exit 0" TERM; while true; do sleep 0.2; done' >/dev/null
out=$(ectr task exec --exec-id full1nc full1 sh -c 'for port in 1 2 3 4 5; do nc -w1 192.0.2.1 $port; echo nc=$?; done' 2>&1)
check "decisions go on: every nc is refused" test "$(grep -c 'nc=126' <<<"$out")" -eq 5
failed_file_records() { "$bin_dir/execguard" metrics --dir "$metrics_dir" 2>/dev/null | grep -F 'execguard_alerts_failed_total' | grep -F 'sandbox="full1"' | grep -F 'sink="file"' | awk '{print $NF}'; }
for _ in $(seq 80); do [ "$(failed_file_records)" = 5 ] && break; sleep 0.1; done
check "and the records the full disk refused are counted" test "$(failed_file_records)" = 5
check "and logged" grep -qa "cannot deliver an alert record.*No space left on device" "$E2E_DIR/containerd.log"
remove full1
umount "$work/full"

echo "== a panic in one inspection (injected)"
ectr run -d --runtime io.containerd.execguard.v2 "$E2E_IMAGE" panic1 sh -c 'trap "exit 0" TERM; while true; do sleep 0.2; done' >/dev/null
out=$(ectr task exec --exec-id p1 panic1 sh -c 'cp /bin/true /tmp/panic-here; /tmp/panic-here; echo panic=$?; ls / >/dev/null && echo ls=ok; nc -w1 192.0.2.1 9; echo nc=$?' 2>&1)
check "the exec whose inspection panicked gets the fail action at its deadline" contains "$out" "panic=126"
check "the next execs in its container are decided as before" contains "$out" "ls=ok"
check "nc among them" contains "$out" "nc=126"
check "and the panic is logged" grep -qa "an inspection panicked" "$E2E_DIR/containerd.log"
out=$(run "$E2E_IMAGE" panic2 sh -c "ls / >/dev/null && echo ls=ok; $tools" 2>&1)
check "another container is supervised as before" contains "$out" "nc=126"
remove panic1

echo "== containerd restarted under a running container"
ectr run -d --runtime io.containerd.execguard.v2 "$E2E_IMAGE" restart1 sh -c 'trap "exit 0" TERM; while true; do sleep 0.2; done' >/dev/null
nc_in() { ectr task exec --exec-id "n$RANDOM" "$1" sh -c "nc -w1 192.0.2.1 $2; echo nc=\$?" 2>&1; }
check "nc is refused before the restart" contains "$(nc_in restart1 9)" "nc=126"
e2e_restart
containerd_answers() { ectr version >/dev/null 2>&1; }
check "containerd is back" containerd_answers
check "the shim still supervises: nc refused after it" contains "$(nc_in restart1 10)" "nc=126"
check "ls still runs" contains "$(ectr task exec --exec-id ls1 restart1 sh -c 'ls / >/dev/null && echo ls=ok' 2>&1)" "ls=ok"
ectr events > "$work/restart-events.txt" 2>&1 &
events_pid=$!
sleep 0.5
nc_in restart1 11 >/dev/null
for _ in $(seq 80); do grep -q '192.0.2.1 11' "$work/restart-events.txt" && break; sleep 0.1; done
check "and its alerts reach the new containerd's event stream" grep -q '"execguard.dev/command-line":"nc -w1 192.0.2.1 11"' "$work/restart-events.txt"
kill "$events_pid" 2>/dev/null
wait "$events_pid" 2>/dev/null
ectr task kill -s TERM restart1
for _ in $(seq 50); do [[ $(ectr task ls 2>&1 | grep restart1) == *STOPPED* ]] && break; sleep 0.1; done
check "kill works" contains "$(ectr task ls 2>&1 | grep restart1)" "STOPPED"
ectr task delete restart1 >/dev/null 2>&1
ectr container delete restart1
check "delete works" lacks "$(ectr container ls -q 2>&1)" "restart1"
for _ in $(seq 50); do [ -z "$(shim_of restart1)" ] && break; sleep 0.1; done
check "and the shim exits" test -z "$(shim_of restart1)"

echo "== the runc shim killed under a running container"
ectr run -d --runtime io.containerd.execguard.v2 "$E2E_IMAGE" runckill1 sh -c 'trap "exit 0" TERM; while true; do sleep 0.2; done' >/dev/null
container_pid=$(ectr task ls 2>&1 | awk '$1 == "runckill1" {print $2}')
runc_shim=$(pgrep -f "containerd-shim-runc-v2 -namespace $E2E_NAMESPACE -id runckill1 " || true)
check "the container runs under its runc shim" test -n "$runc_shim" -a -n "$container_pid"
kill -KILL $runc_shim
for _ in $(seq 100); do [[ $(ectr task ls 2>&1 | grep runckill1) == *STOPPED* ]] && break; sleep 0.1; done
check "containerd learns that the task stopped" contains "$(ectr task ls 2>&1 | grep runckill1)" "STOPPED"
# Gone or a zombie: once the runc shim is gone, the machine's init reaps the orphans.
gone() { local stat; stat=$(ps -o stat= -p "$1" 2>/dev/null); [ -z "$stat" ] || [[ $stat == Z* ]]; }
check "its processes are gone" gone "$container_pid"
ectr task delete runckill1 >/dev/null 2>&1
check "delete works" lacks "$(ectr task ls 2>&1)" "runckill1"
ectr container delete runckill1
for _ in $(seq 50); do [ -z "$(shim_of runckill1)" ] && break; sleep 0.1; done
check "the execguard shim exits" test -z "$(shim_of runckill1)"
check "its root file system is unmounted" lacks "$(cat /proc/mounts)" "/runckill1/rootfs"
check "its agent socket is removed" test -z "$(agent_sockets_left runckill1)"
left=$(for socket in $(e2e_shim_sockets "$E2E_NAMESPACE" runckill1); do [ -e "$socket" ] && echo "$socket"; done)
check "no shim socket is left" test -z "$left"

echo "== the execguard shim killed (SIGKILL) under a running container"
mkdir -p "$work/lost"
ectr events > "$work/lost-events.txt" 2>&1 &
events_pid=$!
# Execs as fast as it can, noting each failure where the host can read it.
ectr run -d --mount "type=bind,src=$work/lost,dst=/out,options=rbind:rw" --runtime io.containerd.execguard.v2 "$E2E_IMAGE" lost1 \
  sh -c 'while true; do /bin/true 2>>/out/errors; done' >/dev/null
container_pid=$(ectr task ls 2>&1 | awk '$1 == "lost1" {print $2}')
kill -KILL "$(shim_of lost1)"
for _ in $(seq 100); do gone "$container_pid" && break; sleep 0.1; done
sleep 0.5
check "its execs fail with ENOSYS while it is gone" contains "$(cat "$work/lost/errors" 2>/dev/null)" "Function not implemented"
check "containerd's cleanup stops the container" gone "$container_pid"
check "and says so in its log" grep -qa "container lost1: the execguard shim exited before the container did" "$E2E_DIR/containerd.log"
check "and on its event stream" contains "$(cat "$work/lost-events.txt")" '/execguard/supervision-lost'
kill "$events_pid" 2>/dev/null
wait "$events_pid" 2>/dev/null
check "the container can be deleted" ectr container delete lost1
runc_shim_of() { pgrep -f "containerd-shim-runc-v2 -namespace $E2E_NAMESPACE -id $1 " || true; }
for _ in $(seq 50); do [ -z "$(runc_shim_of lost1)" ] && break; sleep 0.1; done
check "the runc shim exits" test -z "$(runc_shim_of lost1)"
check "no agent socket is left" test -z "$(agent_sockets_left lost1)"
check "no metrics file is left" test -z "$(ls "$metrics_dir"/*.prom 2>/dev/null)"

echo "== metrics"
# A known sequence: the entrypoint, then one exec session whose shell runs ls and nc.
ectr run -d --runtime io.containerd.execguard.v2 "$E2E_IMAGE" metrics1 sleep 60 >/dev/null
ectr task exec --exec-id m1 metrics1 sh -c '/bin/ls / >/dev/null; /usr/bin/nc -h 2>/dev/null; true' >/dev/null 2>&1
metrics_text() { "$bin_dir/execguard" metrics --dir "$metrics_dir" 2>&1; }
nc_rule=$(alerts_for metrics1 | grep -o '"rule":{"id":"[^"]*"' | head -n1 | cut -d'"' -f6)
sample() { metrics_text | grep -F "$1" | grep -F 'sandbox="metrics1"' | awk '{print $NF}'; }
# The file is rewritten every 5 s.
for _ in $(seq 80); do [ "$(sample execguard_execs_inspected_total)" = 4 ] && break; sleep 0.1; done
metrics_text | grep -F 'sandbox="metrics1"' | grep -v _bucket | sed 's/^/     /'
check "execguard metrics counts the execs inspected (sleep, sh, ls, nc)" test "$(sample execguard_execs_inspected_total)" = 4
check "and the block by its rule ($nc_rule)" test "$(sample "action=\"block\",rule=\"$nc_rule\"")" = 1
check "and three allows" test "$(sample 'action="allow"')" = 3
written_to_file() { metrics_text | grep -F 'execguard_alerts_written_total' | grep -F 'sandbox="metrics1"' | grep -F 'sink="file"' | awk '{print $NF}'; }
for _ in $(seq 80); do [ "$(written_to_file)" = 1 ] && break; sleep 0.1; done
check "and the block's record, written by the file sink" test "$(written_to_file)" = 1
check "and four decisions in the latency histogram" test "$(sample 'execguard_decision_duration_seconds_count')" = 4
check "the metrics are in Prometheus text format" contains "$(metrics_text)" "# TYPE execguard_decision_duration_seconds histogram"
remove metrics1
for _ in $(seq 50); do [ -z "$(ls "$metrics_dir")" ] && break; sleep 0.1; done
check "the pod's metrics file goes with its shim" test -z "$(ls "$metrics_dir")"

echo "== nothing is left behind"
# Every container is deleted by now: the shims must have exited by themselves.
shims() { pgrep -f "containerd-shim-execguard-v2 -namespace $E2E_NAMESPACE" || true; }
for _ in $(seq 50); do [ -z "$(shims)" ] && break; sleep 0.1; done
check "every execguard shim exited by itself" test -z "$(shims)"
# shellcheck disable=SC2086 # one word per container
check "no agent socket is left" test -z "$(agent_sockets_left $containers)"
# The default directory, for the configurations that name none (shim/src/metrics.rs
# file_name: the first 8 bytes of sha256(NAMESPACE/SANDBOX); a ctr container is its own).
metrics_files_left() {
  local id hash
  for id in "$@"; do
    hash=$(printf '%s' "$E2E_NAMESPACE/$id" | sha256sum)
    [ -e "/run/execguard/metrics/execguard-${hash:0:16}.prom" ] && echo "$id"
  done
  return 0
}
# shellcheck disable=SC2086 # one word per container
check "no metrics file is left" test -z "$(metrics_files_left $containers)"
leftover_sockets() {
  local id
  # shellcheck disable=SC2086 # one word per container
  for id in $containers; do
    for socket in $(e2e_shim_sockets "$E2E_NAMESPACE" "$id"); do
      [ -e "$socket" ] && echo "$socket ($id)"
    done
  done
  return 0
}
left=$(leftover_sockets)
check "no shim socket is left" test -z "$left"
[ -n "$left" ] && echo "     left: $left"
e2e_stop
trap 'rm -rf "$work"' EXIT

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
