# tests/integration/shcheck.sh - what the shell tests (test_*.sh) share,
# sourced after they cd to the top of the tree: the check counters, pass
# and fail, and the closing summary line with the exit status.
checks=0
fails=0
pass() { checks=$((checks + 1)); }
fail() {
	checks=$((checks + 1))
	fails=$((fails + 1))
	echo "FAIL: $*"
}
# summary: "OK (N checks)" and exit 0, or "FAILED (F of N checks)" and exit 1
summary() {
	if [ "$fails" -ne 0 ]; then
		echo "FAILED ($fails of $checks checks)"
		exit 1
	fi
	echo "OK ($checks checks)"
	exit 0
}
