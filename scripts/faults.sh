#!/usr/bin/env bash
# Runs every fault scenario against real processes and prints one summary table: faults
# survived, inputs tried, messages lost, recovery times. `SOAK_SECONDS` sets the soak length
# (default 60; CI uses a short one).
set -uo pipefail
cd "$(dirname "$0")/.."
soak_seconds="${SOAK_SECONDS:-60}"

cargo build -q -p zerosmq-tests --tests --bins -p zerosmq-master -p zerosmq-examples || exit 1

rows=()
failed=0
# One table row from a test run: name, exit status, output, figures.
row() {
  local name="$1" status="$2" out="$3" figures="$4"
  if [ "$status" -eq 0 ]; then
    rows+=("| $name | survived | ${figures:-passed} |")
  else
    failed=1
    rows+=("| $name | FAILED | $(printf '%s\n' "$out" | grep -m1 -A1 panicked | paste -sd ' ' -) |")
  fi
}

run() { # name, test file, test filter
  local name="$1" file="$2" filter="$3" out status figures
  out=$(cargo test -q -p zerosmq-tests --test "$file" "$filter" -- --nocapture --test-threads 1 2>&1)
  status=$?
  figures=$(printf '%s\n' "$out" | grep -vE '^(running|test |$|\.+$|test result|warning|   )' | grep -vE 'panicked|stack backtrace|note:' | paste -sd ';' - | sed 's/;/; /g')
  row "$name" "$status" "$out" "$figures"
}

run "master SIGKILL + restart, --state" master_restart with_state_file
run "master SIGKILL + restart, no state file" master_restart without_state_file
run "node SIGKILL, restart under the same name" liveness killed_node
run "two live nodes with one name" liveness two_live_nodes
run "stalled subscriber" slow_subscriber stalled
run "connections reset mid-frame (proxy)" network_faults reset
run "silent peers (connect, send nothing)" network_faults silent
run "half-open TCP (proxy blackhole)" network_faults half_open
run "malformed control requests" bad_input malformed
run "garbage and cut frames on every port" bad_input peers_that
run "PLAIN + ACL, wrong passwords, forged publishers" security plain_users
run "100 fresh pairs, first message each (slow joiner)" slow_joiner hundred

# Hostile peers (issue 12): each test prints one `figures:` line (master CPU seconds, peak RSS,
# witness loss and latency, control latency). A test missing from the tree fails the table.
attack() { # name, test file, test function
  local name="$1" file="$2" test="$3" out status
  if ! grep -qs "^fn $test()" "tests/tests/$file.rs"; then
    failed=1
    rows+=("| $name | FAILED | no test \`$file::$test\` in this tree |")
    return
  fi
  out=$(cargo test -q -p zerosmq-tests --test "$file" -- --exact "$test" --nocapture --test-threads 1 2>&1)
  status=$?
  row "$name" "$status" "$out" "$(printf '%s\n' "$out" | grep -o 'figures: .*' | sed 's/^figures: //' | paste -sd ';' -)"
}

attack "ACL: stop requests for another user's nodes" hostile_control acl_stop_for_another_users_node
attack "heartbeat hijack and name squatting" hostile_control heartbeat_hijack_and_name_squatting
attack "heartbeat name spam" hostile_control heartbeat_name_spam
attack "subscription storm (50,000 subscribe+cancel, 50,000 held)" hostile_data subscription_storm
attack "PING flood from a peer that never reads" hostile_data ping_flood
attack "ready-probe flood from a peer that never reads" hostile_data ready_probe_flood
attack "graph amplification (REQUEST_MAP not read)" hostile_control graph_amplification
attack "descriptor exhaustion (RLIMIT_NOFILE 128, 200 peers)" hostile_data descriptor_exhaustion
attack "idle ZMTP 3.0 peers" hostile_data idle_zmtp30_peers
attack "planted symlink at the state file's temporary" hostile_control state_file_symlink

soak=$(cargo run -q -p zerosmq-tests --bin zerosmq-soak -- --seconds "$soak_seconds" 2>&1)
soak_status=$?
[ $soak_status -eq 0 ] || failed=1

echo
echo "| fault | result | figures |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Soak (${soak_seconds} s, 100 topics, churn, master restart halfway):"
printf '%s\n' "$soak" | grep -E '^\||^master restarted|^soak:'
exit $failed
