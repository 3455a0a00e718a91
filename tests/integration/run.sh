#!/bin/bash
# Runs vouch's integration tests against $VOUCH_BUILD/vouchd.
#
# Phases (each test file is a standalone unittest script, at most 300 s):
#   shards4     every test file, --shards 4
#   compat      every test file, --shards 4 --io-compat 5.10
#   shards1/2   a quick subset with --shards 1 and --shards 2
#   shell       other test_*.sh scripts of this folder, once
# Files run $VOUCH_JOBS (default 3) at a time; the tests mostly wait on
# timers, so this fits a 2-core machine.
#
# Environment:
#   VOUCH_BUILD   build directory (default build/release)
#   VOUCH_TESTS   "crossshard": only the cross-shard files (test_xs_*.py),
#                 phases shards4, compat and shards2; or a space-separated list of
#                 file names to run (every phase)
#   VOUCH_PHASES  override the phase list, e.g. "shards4"
#   VOUCH_JOBS    parallel files
#   VOUCH_SLOW    multiplier for upper time bounds (3 for asan, 5 for tsan
#                 by default)
set -u
cd "$(dirname "$0")/../.." || exit 1
HERE=tests/integration
export VOUCH_BUILD=${VOUCH_BUILD:-build/release}
PY=/usr/bin/python3
JOBS=${VOUCH_JOBS:-3}
case "$VOUCH_BUILD" in
*asan*) : "${VOUCH_SLOW:=3}" ;;
*tsan*) : "${VOUCH_SLOW:=5}" ;;
*) : "${VOUCH_SLOW:=1}" ;;
esac
export VOUCH_SLOW
TESTS=${VOUCH_TESTS:-}

if [ ! -x "$VOUCH_BUILD/vouchd" ]; then
	echo "run.sh: no $VOUCH_BUILD/vouchd (build it first)" >&2
	exit 1
fi

# Longest first, so that the parallel slots stay busy.
ORDER="test_admin_api.py test_xs_will.py test_xs_session.py test_xs_stress.py test_xs_hostile.py test_xs_v5.py
test_xs_pubsub.py test_xs_retain.py test_xs_connect.py test_xs_shared.py
test_xs_sys.py test_xs_limits.py test_flags.py"
all_files() {
	local f seen=" "
	for f in $ORDER; do
		[ -f "$HERE/$f" ] && { echo "$f"; seen="$seen$f "; }
	done
	for f in "$HERE"/test_*.py; do
		f=${f##*/}
		case "$seen" in *" $f "*) ;; *) echo "$f" ;; esac
	done
}
QUICK="test_xs_pubsub.py test_xs_connect.py test_xs_session.py test_xs_shared.py"

if [ "$TESTS" = crossshard ]; then
	FILES=$(all_files | grep '^test_xs_')
	QUICK_FILES=$(for f in $QUICK; do echo "$f"; done)
	PHASES=${VOUCH_PHASES:-"shards4 compat shards2"}
elif [ -n "$TESTS" ]; then
	FILES=$(for f in $TESTS; do echo "${f##*/}"; done)
	QUICK_FILES=$FILES
	PHASES=${VOUCH_PHASES:-"shards4 compat shards1 shards2"}
else
	FILES=$(all_files)
	QUICK_FILES=$(for f in $QUICK; do echo "$f"; done)
	PHASES=${VOUCH_PHASES:-"shards4 compat shards1 shards2 shell"}
fi

LOGS=$(mktemp -d /tmp/vouch-it.XXXXXX)
JOBLIST=()	# "name|env...|command"
for ph in $PHASES; do
	case $ph in
	shards4) for f in $FILES; do JOBLIST+=("$ph|VOUCH_SHARDS=4|$f"); done ;;
	compat) for f in $FILES; do
			JOBLIST+=("$ph|VOUCH_SHARDS=4 VOUCH_IO_COMPAT=5.10|$f")
		done ;;
	shards1) for f in $QUICK_FILES; do JOBLIST+=("$ph|VOUCH_SHARDS=1|$f"); done ;;
	shards2) for f in $QUICK_FILES; do JOBLIST+=("$ph|VOUCH_SHARDS=2|$f"); done ;;
	shell) for f in "$HERE"/test_*.sh; do
			[ -f "$f" ] && JOBLIST+=("$ph||${f##*/}")
		done ;;
	*) echo "run.sh: unknown phase $ph" >&2; exit 2 ;;
	esac
done

run_job() {	# phase env file
	local ph=$1 envs=$2 f=$3 log="$LOGS/$1.$3.log" t0 rc
	t0=$(date +%s.%N)
	case $f in
	*.py) env $envs timeout -k 5 300 $PY "$HERE/$f" >"$log" 2>&1 ;;
	*) env $envs timeout -k 5 300 bash "$HERE/$f" >"$log" 2>&1 ;;
	esac
	rc=$?
	echo "$rc $(echo "$(date +%s.%N) - $t0" | bc)" >"$log.rc"
}

START=$(date +%s)
echo "integration: $VOUCH_BUILD, ${#JOBLIST[@]} runs, $JOBS at a time, logs in $LOGS"
running=0
for j in "${JOBLIST[@]}"; do
	IFS='|' read -r ph envs f <<<"$j"
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
	run_job "$ph" "$envs" "$f" &
	running=$((running + 1))
done
wait

fail=0
for j in "${JOBLIST[@]}"; do
	IFS='|' read -r ph envs f <<<"$j"
	log="$LOGS/$ph.$f.log"
	read -r rc secs <"$log.rc" 2>/dev/null || { rc=99; secs=0; }
	summary=$(grep -E '^(Ran|OK|FAILED)' "$log" | tr '\n' ' ')
	if [ "$rc" = 0 ]; then
		printf "  PASS  %-8s %-22s %6.1fs  %s\n" "$ph" "$f" "$secs" "$summary"
	else
		fail=1
		printf "  FAIL  %-8s %-22s %6.1fs  rc=%s %s\n" "$ph" "$f" "$secs" "$rc" "$summary"
	fi
done
if [ $fail != 0 ]; then
	for j in "${JOBLIST[@]}"; do
		IFS='|' read -r ph envs f <<<"$j"
		log="$LOGS/$ph.$f.log"
		read -r rc secs <"$log.rc" 2>/dev/null || rc=99
		[ "$rc" = 0 ] && continue
		echo
		echo "===== $ph $f ($envs) rc=$rc ====="
		grep -E '^(FAIL|ERROR):' "$log"
		echo "-----"
		tail -n 80 "$log"
	done
fi
echo "integration: $(( $(date +%s) - START ))s, $([ $fail = 0 ] && echo passed || echo FAILED) (logs in $LOGS)"
exit $fail
