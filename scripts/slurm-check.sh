#!/usr/bin/env bash
# rlp's job graph on a real single-node Slurm (Debian's slurm-wlm and munge, installed when
# missing), brought up on this machine. Needs root, and refuses to touch a Slurm configuration
# it did not write. Three checks:
#   1. two cells sharing a base: the base trains once, both cells' stages after it, then evals;
#   2. a job cancelled mid-stage (scancel) and re-submitted resumes from its checkpoint;
#   3. failing stages: their dependants never run, and `rlp status` says why.
#
#     scripts/slurm-check.sh            # RLP=path/to/rlp to use another binary
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
rlp=${RLP:-$repo/target/release/rlp}
[ -x "$rlp" ] || cargo build --release
log() { echo "slurm-check: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# --- a one-node cluster -------------------------------------------------------------------
if ! command -v slurmctld >/dev/null; then
    log "installing slurm-wlm and munge"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
conf=/etc/slurm/slurm.conf
if [ -f "$conf" ] && ! grep -q "^ClusterName=rlpcheck$" "$conf"; then
    fail "$conf exists and was not written by this script; not touching it"
fi
host=$(hostname -s)
cpus=$(nproc)
mem=$(($(free -m | awk '/^Mem:/ {print $2}') * 8 / 10))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat >"$conf" <<EOF
ClusterName=rlpcheck
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
KillWait=5
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
[ -f /etc/munge/munge.key ] || mungekey --create
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
    case "$state" in
    idle* | mixed* | allocated*) break ;;
    down* | drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
sinfo -h -o "%P %T %c" | grep -Eq "idle|mixed|alloc" || fail "the node did not come up: $(sinfo 2>&1)"
log "cluster up: $(sinfo -h -o '%P %T %c CPUs')"

work=$(mktemp -d /tmp/rlp-slurm.XXXXXX)
wait_jobs() { # waits until no job is pending or running, at most $1 seconds
    for _ in $(seq "$1"); do
        [ -z "$(squeue -h)" ] && return 0
        sleep 1
    done
    fail "jobs still queued after $1 s: $(squeue)"
}
status_of() { "$rlp" status "$1" --json; }
# Every stage and eval of the run directory $1 finished, and its base has one metrics row per
# step (trained once, or resumed without repeating a step); sets $steps and $rows.
check_finished() {
    local unfinished base
    unfinished=$(status_of "$1" | grep -vc '"state":"finished"' || true)
    [ "$unfinished" = 0 ] || fail "not all finished: $("$rlp" status "$1")"
    base=$(ls -d "$1"/stages/base-*)
    steps=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['steps'])" "$base/done.json")
    rows=$(wc -l <"$base/metrics.jsonl")
    [ "$rows" = "$steps" ] || fail "the base's metrics have $rows rows for $steps steps"
}

# --- 1. two cells sharing a base ----------------------------------------------------------
out=$work/shared
"$rlp" submit tests/fixtures/run/sweep.rlp --slurm --out "$out" >/dev/null
jobs=$(wc -l <"$out/sweep/slurm/jobs.txt")
[ "$jobs" = 5 ] || fail "expected 5 jobs (base, two mids, two evals), got $jobs"
wait_jobs 300
check_finished "$out/sweep"
grep -l "reused" "$out"/sweep/slurm/eval-*.log >/dev/null || fail "the eval jobs did not reuse the stages"
[ "$("$rlp" status "$out/sweep" | grep -c "(job [0-9]*)$")" = 5 ] || fail "rlp status lacks the job ids"
log "1. ok: 5 jobs, the shared base trained once ($steps steps, $rows metric rows), both cells evaluated"

# --- 2. cancelled mid-stage, re-submitted -------------------------------------------------
out=$work/cancel
sed -e 's/tokens 20k/tokens 2000k/' -e 's/^seed 11$/seed 12/' tests/fixtures/run/sweep.rlp >"$work/long.rlp"
printf '\n' >>"$work/long.rlp"
"$rlp" submit "$work/long.rlp" --slurm --out "$out" >/dev/null
for _ in $(seq 300); do
    step=$(status_of "$out/long" | python3 -c '
import json, sys
for line in sys.stdin:
    l = json.loads(line)
    if l["name"] == "base" and l["state"] == "running":
        print(l["step"])' || true)
    [ -n "$step" ] && [ "$step" -ge 60 ] && break
    sleep 1
done
[ -n "${step:-}" ] || fail "the base never ran"
scancel -u "$(id -un)"
wait_jobs 60
log "2. cancelled at step $step: $("$rlp" status "$out/long" | head -1)"
"$rlp" submit "$work/long.rlp" --slurm --out "$out" >/dev/null
wait_jobs 600
check_finished "$out/long"
grep -hE "resum|taken over" "$out"/long/slurm/base-*.log >/dev/null || fail "the base did not resume"
log "2. ok: re-submitted, the base resumed ($(grep -hoE '(resum|taken over)[^.]*' "$out"/long/slurm/base-*.log | head -1)), $rows rows for $steps steps"

# --- 3. a failing stage -------------------------------------------------------------------
# The base finishes, then loses its weights: both mid-training jobs fail loading them, and the
# eval jobs that wait for them never run.
out=$work/failing
"$rlp" run tests/fixtures/run/sweep.rlp --out "$out" --stage base 2>/dev/null
rm "$out"/sweep/stages/base-*/model.safetensors
"$rlp" submit tests/fixtures/run/sweep.rlp --slurm --out "$out" >/dev/null
wait_jobs 120
status=$("$rlp" status "$out/sweep")
[ "$(echo "$status" | grep -c "^stage  mid .*failed: .*model.safetensors")" = 2 ] ||
    fail "the mid stages' failures are not reported: $status"
[ "$(echo "$status" | grep -c "^eval .*blocked: \`mid\`")" = 2 ] || fail "the evals are not blocked: $status"
[ -z "$(ls "$out"/sweep/*/eval/*.json 2>/dev/null)" ] || fail "an eval ran"
log "3. ok: the mid stages failed, the evals never ran:"
echo "$status" >&2
log "all checks passed ($work)"
