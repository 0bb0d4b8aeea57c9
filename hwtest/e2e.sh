#!/bin/sh
# End-to-end test of the stack on a real ublk driver: vexfs-ublk serves a
# backing file (or a device the user named) as /dev/ublkbN; O_DIRECT I/O, ext4,
# VexFS with the C vector example, daemon crash + recovery, and deletion run on
# top of it. Each step prints exactly one line:
#   PASS <n> <name>: <detail>      or      FAIL <n> <name>: <detail>
# then, after a failure, the tail of that step's log indented by four spaces.
# The last line is "E2E DONE passed=X failed=Y"; the exit status is 1 when a
# step failed.
#
# POSIX sh: it runs under busybox sh in the QEMU guest (hwtest/vm/run) and
# under bash or dash on a host with /dev/ublk-control (hwtest/run).
#
# Environment:
#   HWTEST_IMAGE       backing file or block device (required; DESTROYED).
#                      A file that does not exist is created sparse.
#   HWTEST_IMAGE_SIZE  size of a created backing file (default 256M)
#   HWTEST_TARGET      ublk (default): everything on /dev/ublkbN;
#                      file: steps 2 and 3 straight on HWTEST_IMAGE (ext4
#                      through a loop device), for a kernel without ublk
#   HWTEST_STEPS       steps to run (default "1 2 3 4 5"; "2 3" for file)
#   HWTEST_WORK_DIR    where mount points and logs go (default: a new
#                      temporary directory, removed at the end)
#   HWTEST_TIMEOUT_S   limit for each long command (default 300 s: the TCG
#                      guest is slow); short ones get HWTEST_TIMEOUT_SHORT_S (60)
#   VEXFS_UBLK VEXFS_HWTEST VEXFS VEXFS_EXAMPLE MKFS_EXT4 E2FSCK VEXFS_BENCH
#                      the programs (default: found in PATH)
set -u

VEXFS_UBLK=${VEXFS_UBLK:-vexfs-ublk}
VEXFS_HWTEST=${VEXFS_HWTEST:-vexfs-hwtest}
VEXFS=${VEXFS:-vexfs}
VEXFS_EXAMPLE=${VEXFS_EXAMPLE:-vexfs_example}
VEXFS_BENCH=${VEXFS_BENCH:-vexfs-bench}
MKFS_EXT4=${MKFS_EXT4:-mkfs.ext4}
E2FSCK=${E2FSCK:-e2fsck}

IMAGE=${HWTEST_IMAGE:?HWTEST_IMAGE must name the backing file or device (its contents are destroyed)}
IMAGE_SIZE=${HWTEST_IMAGE_SIZE:-256M}
TARGET=${HWTEST_TARGET:-ublk}
case $TARGET in
ublk) STEPS=${HWTEST_STEPS:-1 2 3 4 5} ;;
file) STEPS=${HWTEST_STEPS:-2 3} ;;
*)
	echo "e2e.sh: HWTEST_TARGET must be ublk or file, not '$TARGET'" >&2
	exit 2
	;;
esac
TIMEOUT_LONG_S=${HWTEST_TIMEOUT_S:-300}
TIMEOUT_SHORT_S=${HWTEST_TIMEOUT_SHORT_S:-60}
# How long a device node or a daemon may take to appear or go away.
SETTLE_TIMEOUT_S=10

# The workload sizes: small enough for a software-emulated guest, big enough
# to cross many blocks, queue depths and request sizes.
VERIFY_DEPTHS=1,4,32
VERIFY_BLOCK_SIZES=4096,65536,524288
VERIFY_BYTES=32M
FILL_BYTES=16M
FILL_GENERATION=7
VECTOR_DIMENSIONS=64
VECTOR_COUNT=1000
VECTOR_K=10

if [ -n "${HWTEST_WORK_DIR:-}" ]; then
	WORK=$HWTEST_WORK_DIR
	WORK_OWNED=0
	mkdir -p "$WORK" || exit 2
else
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/vexfs-e2e.XXXXXX") || exit 2
	WORK_OWNED=1
fi

# The ublk daemons' messages (backing errors, shutdown).
UBLK_LOG=$WORK/vexfs-ublk.log

PASSED=0
FAILED=0
# ublk device ids this script added and has not deleted yet (cleanup deletes them).
OUR_IDS=""
# The device of step 1 (used by steps 2 and 3) and of step 4 (used by step 5).
STEP1_DEVICE=""
STEP4_DEVICE=""

# ---------------------------------------------------------------- helpers

now_s() {
	# /proc/uptime has centiseconds; busybox date has whole seconds only.
	cut -d' ' -f1 /proc/uptime
}

elapsed_s() {
	awk -v start="$1" -v end="$(now_s)" 'BEGIN { printf "%.1f", end - start }'
}

# step_begin N NAME: starts a step; its commands log to $STEP_LOG.
step_begin() {
	STEP_NUMBER=$1
	STEP_NAME=$2
	STEP_LOG=$WORK/step$1.log
	STEP_START=$(now_s)
	STEP_DAEMON_LOG=""
	: >"$STEP_LOG"
}

pass() {
	PASSED=$((PASSED + 1))
	echo "PASS $STEP_NUMBER $STEP_NAME: $1 ($(elapsed_s "$STEP_START") s)"
}

fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL $STEP_NUMBER $STEP_NAME: $1 ($(elapsed_s "$STEP_START") s)"
	# Indented so that nothing in it can pass for a step line.
	tail -n 25 "$STEP_LOG" | sed 's/^/    /'
	if [ -n "$STEP_DAEMON_LOG" ] && [ -s "$STEP_DAEMON_LOG" ]; then
		echo "    -- $STEP_DAEMON_LOG:"
		tail -n 15 "$STEP_DAEMON_LOG" | sed 's/^/    /'
	fi
}

# run SECONDS COMMAND...: runs it under timeout, output to the step log.
# Returns the command's status; RUN_RESULT says it in words.
run() {
	run_limit_s=$1
	shift
	echo "+ $*" >>"$STEP_LOG"
	timeout "$run_limit_s" "$@" >>"$STEP_LOG" 2>&1
	run_finished
}

# run_finished: notes the status of the command that just ran.
run_finished() {
	run_status=$?
	case $run_status in
	0) RUN_RESULT="succeeded" ;;
	# coreutils timeout exits 124, busybox's dies of its SIGTERM (143).
	124 | 143) RUN_RESULT="timed out after $run_limit_s s (exit $run_status)" ;;
	*) RUN_RESULT="exited $run_status" ;;
	esac
	[ "$run_status" -eq 0 ] || echo "! $RUN_RESULT" >>"$STEP_LOG"
	return "$run_status"
}

# run_out FILE SECONDS COMMAND...: like run, but stdout goes to FILE (daemons
# keep it open, so it is a file, never a pipe or a command substitution).
run_out() {
	run_out_file=$1
	run_limit_s=$2
	shift 2
	echo "+ $* >$run_out_file" >>"$STEP_LOG"
	timeout "$run_limit_s" "$@" >"$run_out_file" 2>>"$STEP_LOG"
	run_finished
	run_out_status=$?
	cat "$run_out_file" >>"$STEP_LOG"
	return "$run_out_status"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_until() {
	wait_deadline=$(($(cut -d. -f1 /proc/uptime) + $1))
	shift
	until "$@"; do
		[ "$(cut -d. -f1 /proc/uptime)" -lt "$wait_deadline" ] || return 1
		sleep 0.1
	done
}

pid_gone() { [ ! -d "/proc/$1" ]; }
nodes_gone() { [ ! -e "/dev/ublkb$1" ] && [ ! -e "/dev/ublkc$1" ]; }
is_mounted() { awk -v dir="$1" '$2 == dir { found = 1 } END { exit !found }' /proc/mounts; }
not_mounted() { ! is_mounted "$1"; }
md5_of() { md5sum <"$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------- ublk devices

# ublk_add [--recoverable]: adds a device over $IMAGE; sets UBLK_DEVICE
# (/dev/ublkbN) and UBLK_ID (N), or returns 1 with FAIL_DETAIL set.
ublk_add() {
	UBLK_DEVICE=""
	UBLK_ID=""
	STEP_DAEMON_LOG=$UBLK_LOG
	ublk_ids_before=$(ublk_ids)
	if ! run_out "$WORK/add.out" "$TIMEOUT_SHORT_S" "$VEXFS_UBLK" add --backing "$IMAGE" \
		--log "$UBLK_LOG" "$@"; then
		FAIL_DETAIL="vexfs-ublk add${*:+ $*} $RUN_RESULT"
		# A device that appeared meanwhile is this add's, half made: cleanup deletes it.
		for ublk_new_id in $(ublk_ids); do
			case " $ublk_ids_before " in
			*" $ublk_new_id "*) ;;
			*) OUR_IDS="$OUR_IDS $ublk_new_id" ;;
			esac
		done
		return 1
	fi
	UBLK_DEVICE=$(grep -E '^/dev/ublkb[0-9]+$' "$WORK/add.out" | tail -n 1)
	if [ -z "$UBLK_DEVICE" ]; then
		FAIL_DETAIL="vexfs-ublk add${*:+ $*} printed no /dev/ublkbN line"
		return 1
	fi
	UBLK_ID=${UBLK_DEVICE#/dev/ublkb}
	OUR_IDS="$OUR_IDS $UBLK_ID"
	if ! wait_until "$SETTLE_TIMEOUT_S" test -b "$UBLK_DEVICE"; then
		FAIL_DETAIL="vexfs-ublk add printed $UBLK_DEVICE but it is not a block device"
		return 1
	fi
}

# ublk_ids: the ids of all ublk devices there are, from their char nodes.
ublk_ids() {
	for ublk_node in /dev/ublkc*; do
		[ -e "$ublk_node" ] && echo "${ublk_node#/dev/ublkc}"
	done
}

# ublk_del ID: deletes the device and forgets it.
ublk_del() {
	run "$TIMEOUT_SHORT_S" "$VEXFS_UBLK" del --id "$1" || return 1
	ublk_del_remaining=""
	for ublk_del_id in $OUR_IDS; do
		[ "$ublk_del_id" = "$1" ] || ublk_del_remaining="$ublk_del_remaining $ublk_del_id"
	done
	OUR_IDS=$ublk_del_remaining
}

# ublk_listed ID: whether `vexfs-ublk list` shows /dev/ublkbID.
ublk_listed() {
	run_out "$WORK/list.out" "$TIMEOUT_SHORT_S" "$VEXFS_UBLK" list || return 2
	grep -Eq "ublkb$1([^0-9]|\$)" "$WORK/list.out"
}

# ublk_daemon_pid ID: the pid of the process serving /dev/ublkbID: the PID
# column of `vexfs-ublk list` (a table with a header line), else the one
# vexfs-ublk process whose command line names $IMAGE, else the only
# vexfs-ublk process there is. Prints nothing when none is unambiguous.
ublk_daemon_pid() {
	if ublk_listed "$1"; then
		daemon_pid=$(awk -v dev="/dev/ublkb$1" '
			NR == 1 { for (i = 1; i <= NF; i++) if ($i == "PID") column = i; next }
			column { for (i = 1; i <= NF; i++) if ($i == dev && $column ~ /^[0-9]+$/) print $column }
		' "$WORK/list.out" | head -n 1)
		if [ -n "$daemon_pid" ] && [ "$daemon_pid" -gt 0 ]; then
			echo "$daemon_pid"
			return
		fi
	fi
	daemon_by_image=""
	daemon_any=""
	for daemon_dir in /proc/[0-9]*; do
		daemon_comm=$(cat "$daemon_dir/comm" 2>/dev/null) || continue
		[ "$daemon_comm" = vexfs-ublk ] || continue
		daemon_any="$daemon_any ${daemon_dir#/proc/}"
		daemon_cmdline=$(tr '\0' ' ' <"$daemon_dir/cmdline" 2>/dev/null)
		case " $daemon_cmdline " in
		*" $IMAGE "*) daemon_by_image="$daemon_by_image ${daemon_dir#/proc/}" ;;
		esac
	done
	for daemon_candidates in "$daemon_by_image" "$daemon_any"; do
		# shellcheck disable=SC2086 # word splitting counts the pids
		set -- $daemon_candidates
		if [ $# -eq 1 ]; then
			echo "$1"
			return
		fi
	done
}

# ---------------------------------------------------------------- mounts

# vexfs_mount DEVICE DIR: mounts and sets VEXFS_DAEMON_PID from the line
# "DIR: mounted DEVICE (daemon pid N, ...)" that `vexfs mount` prints.
vexfs_mount() {
	VEXFS_DAEMON_PID=""
	STEP_DAEMON_LOG=$WORK/vexfs-daemon.log
	mkdir -p "$2"
	run_out "$WORK/mount.out" "$TIMEOUT_LONG_S" "$VEXFS" mount -o "log=$STEP_DAEMON_LOG" "$1" "$2" || return 1
	VEXFS_DAEMON_PID=$(sed -n 's/.*daemon pid \([0-9][0-9]*\).*/\1/p' "$WORK/mount.out" | head -n 1)
	is_mounted "$2"
}

# unmount DIR [DAEMON_PID]: unmounts (retrying while busy) and waits until
# the FUSE daemon, if any, has written everything back and exited.
unmount() {
	unmount_tries=0
	while is_mounted "$1"; do
		umount "$1" >>"$STEP_LOG" 2>&1 && break
		unmount_tries=$((unmount_tries + 1))
		if [ "$unmount_tries" -ge 50 ]; then
			echo "! $1 stays busy; detaching it" >>"$STEP_LOG"
			umount -l "$1" >>"$STEP_LOG" 2>&1
			return 1
		fi
		sleep 0.2
	done
	if [ -n "${2:-}" ] && ! wait_until "$TIMEOUT_SHORT_S" pid_gone "$2"; then
		echo "! daemon $2 still running after the unmount" >>"$STEP_LOG"
		return 1
	fi
}

# The device steps 2 and 3 work on.
step_device() {
	if [ "$TARGET" = file ]; then
		echo "$IMAGE"
	else
		echo "$STEP1_DEVICE"
	fi
}

# ---------------------------------------------------------------- steps

step1_ublk_verify() {
	step_begin 1 ublk-verify
	ublk_add || {
		fail "$FAIL_DETAIL"
		return
	}
	STEP1_DEVICE=$UBLK_DEVICE
	run "$TIMEOUT_LONG_S" "$VEXFS_HWTEST" verify --device "$STEP1_DEVICE" \
		--depths "$VERIFY_DEPTHS" --block-sizes "$VERIFY_BLOCK_SIZES" \
		--bytes "$VERIFY_BYTES" --destructive || {
		fail "$STEP1_DEVICE: vexfs-hwtest verify $RUN_RESULT"
		return
	}
	ublk_listed "$UBLK_ID" || {
		fail "$STEP1_DEVICE: vexfs-ublk list does not show it"
		return
	}
	# The engine benchmark takes the device like any other block device.
	# Only that it runs without errors is checked: timings here are TCG's.
	bench_json=$WORK/bench.json
	run_out "$bench_json" "$TIMEOUT_LONG_S" "$VEXFS_BENCH" engine --path "$STEP1_DEVICE" \
		--pattern randread --qd 8 --seconds 1 --json || {
		fail "$STEP1_DEVICE: vexfs-bench engine $RUN_RESULT"
		return
	}
	bench_ios=$(grep -o '"ios":[0-9]*' "$bench_json" | cut -d: -f2)
	grep -q '"errors":0,' "$bench_json" && [ "${bench_ios:-0}" -gt 0 ] || {
		fail "$STEP1_DEVICE: vexfs-bench engine reported errors or no I/O: $(cat "$bench_json")"
		return
	}
	pass "$STEP1_DEVICE over $IMAGE: O_DIRECT write+verify of $VERIFY_BYTES at depths $VERIFY_DEPTHS, blocks $VERIFY_BLOCK_SIZES; listed; vexfs-bench engine: $bench_ios reads, 0 errors"
}

step2_ext4() {
	step_begin 2 ext4
	dev=$(step_device)
	[ -n "$dev" ] || {
		fail "no device: step 1 did not add one"
		return
	}
	mnt=$WORK/ext4
	mkdir -p "$mnt"
	run "$TIMEOUT_LONG_S" "$MKFS_EXT4" -F -q "$dev" || {
		fail "mkfs.ext4 $dev $RUN_RESULT"
		return
	}
	# A regular file is mounted through a loop device (busybox and util-linux
	# mount both set one up).
	run "$TIMEOUT_SHORT_S" mount -t ext4 "$dev" "$mnt" || {
		fail "mount -t ext4 $dev $RUN_RESULT"
		return
	}
	run "$TIMEOUT_LONG_S" dd if=/dev/urandom of="$mnt/random.bin" bs=65536 count=128 &&
		echo "ext4 on $dev" >"$mnt/hello.txt" && mkdir -p "$mnt/dir/sub" &&
		seq 1 10000 >"$mnt/dir/sub/numbers.txt" || {
		fail "writing files into ext4 failed"
		unmount "$mnt"
		return
	}
	sum_random=$(md5_of "$mnt/random.bin")
	sum_numbers=$(md5_of "$mnt/dir/sub/numbers.txt")
	unmount "$mnt" || {
		fail "umount $mnt failed"
		return
	}
	# Remount: the data must come from the device, not the page cache.
	run "$TIMEOUT_SHORT_S" mount -t ext4 "$dev" "$mnt" || {
		fail "second mount of $dev $RUN_RESULT"
		return
	}
	if [ "$(md5_of "$mnt/random.bin")" != "$sum_random" ] ||
		[ "$(md5_of "$mnt/dir/sub/numbers.txt")" != "$sum_numbers" ] ||
		[ "$(cat "$mnt/hello.txt")" != "ext4 on $dev" ]; then
		fail "files differ after remount"
		unmount "$mnt"
		return
	fi
	unmount "$mnt" || {
		fail "second umount of $mnt failed"
		return
	}
	run "$TIMEOUT_LONG_S" "$E2FSCK" -f -n "$dev" || {
		fail "e2fsck -f -n $dev $RUN_RESULT"
		return
	}
	pass "$dev: mkfs.ext4, 8 MiB + small files survive umount/mount (md5 $sum_random), e2fsck -f -n clean"
}

step3_vexfs() {
	step_begin 3 vexfs
	dev=$(step_device)
	[ -n "$dev" ] || {
		fail "no device: step 1 did not add one"
		return
	}
	mnt=$WORK/vexfs
	# -f: step 2 left an ext4 filesystem there.
	run "$TIMEOUT_LONG_S" "$VEXFS" mkfs -f "$dev" || {
		fail "vexfs mkfs -f $dev $RUN_RESULT"
		return
	}
	vexfs_mount "$dev" "$mnt" || {
		fail "vexfs mount $dev $mnt failed"
		return
	}
	echo "vexfs on $dev" >"$mnt/hello.txt" &&
		run "$TIMEOUT_LONG_S" dd if=/dev/urandom of="$mnt/random.bin" bs=65536 count=64 || {
		fail "writing files into VexFS failed"
		unmount "$mnt" "$VEXFS_DAEMON_PID"
		return
	}
	sum_random=$(md5_of "$mnt/random.bin")
	[ "$(cat "$mnt/hello.txt")" = "vexfs on $dev" ] || {
		fail "hello.txt reads back wrong"
		unmount "$mnt" "$VEXFS_DAEMON_PID"
		return
	}
	run "$TIMEOUT_LONG_S" "$VEXFS_EXAMPLE" "$mnt/vectors.bin" --dims "$VECTOR_DIMENSIONS" \
		--count "$VECTOR_COUNT" --k "$VECTOR_K" || {
		fail "vexfs_example (C, ioctls) $RUN_RESULT"
		unmount "$mnt" "$VEXFS_DAEMON_PID"
		return
	}
	unmount "$mnt" "$VEXFS_DAEMON_PID" || {
		fail "umount $mnt (daemon ${VEXFS_DAEMON_PID:-?}) failed"
		return
	}
	# Remount: files and vectors must come back from the device.
	vexfs_mount "$dev" "$mnt" || {
		fail "second vexfs mount of $dev failed"
		return
	}
	if [ "$(md5_of "$mnt/random.bin")" != "$sum_random" ] ||
		[ "$(cat "$mnt/hello.txt")" != "vexfs on $dev" ]; then
		fail "files differ after remount"
		unmount "$mnt" "$VEXFS_DAEMON_PID"
		return
	fi
	run "$TIMEOUT_LONG_S" "$VEXFS_EXAMPLE" "$mnt/vectors.bin" --dims "$VECTOR_DIMENSIONS" \
		--count "$VECTOR_COUNT" --k "$VECTOR_K" --check-only || {
		fail "vexfs_example --check-only after remount $RUN_RESULT"
		unmount "$mnt" "$VEXFS_DAEMON_PID"
		return
	}
	unmount "$mnt" "$VEXFS_DAEMON_PID" || {
		fail "second umount of $mnt failed"
		return
	}
	run "$TIMEOUT_LONG_S" "$VEXFS" fsck "$dev" || {
		fail "vexfs fsck $dev $RUN_RESULT"
		return
	}
	if [ "$TARGET" = ublk ]; then
		ublk_del "${STEP1_DEVICE#/dev/ublkb}" || {
			fail "vexfs-ublk del --id ${STEP1_DEVICE#/dev/ublkb} $RUN_RESULT"
			return
		}
		STEP1_DEVICE=""
	fi
	pass "$dev: vexfs mkfs, mount, files + C vector example ($VECTOR_COUNT x $VECTOR_DIMENSIONS, k=$VECTOR_K) survive umount/mount, fsck clean"
}

step4_recover() {
	step_begin 4 ublk-recover
	# Two daemons must not serve one backing: drop what earlier steps left.
	for id in $OUR_IDS; do
		ublk_del "$id"
	done
	STEP1_DEVICE=""
	ublk_add --recoverable || {
		fail "$FAIL_DETAIL"
		return
	}
	STEP4_DEVICE=$UBLK_DEVICE
	run "$TIMEOUT_LONG_S" "$VEXFS_HWTEST" fill --device "$UBLK_DEVICE" \
		--generation "$FILL_GENERATION" --bytes "$FILL_BYTES" --destructive || {
		fail "$UBLK_DEVICE: vexfs-hwtest fill $RUN_RESULT"
		return
	}
	pid=$(ublk_daemon_pid "$UBLK_ID")
	[ -n "$pid" ] || {
		fail "$UBLK_DEVICE: cannot tell which process serves it"
		return
	}
	echo "+ kill -9 $pid" >>"$STEP_LOG"
	kill -9 "$pid" && wait_until "$SETTLE_TIMEOUT_S" pid_gone "$pid" || {
		fail "$UBLK_DEVICE: daemon $pid did not die"
		return
	}
	[ -b "$UBLK_DEVICE" ] || {
		fail "$UBLK_DEVICE vanished when its daemon died (not recoverable?)"
		return
	}
	run_out "$WORK/recover.out" "$TIMEOUT_SHORT_S" "$VEXFS_UBLK" recover --id "$UBLK_ID" \
		--log "$UBLK_LOG" || {
		fail "vexfs-ublk recover --id $UBLK_ID $RUN_RESULT"
		return
	}
	grep -qx "$UBLK_DEVICE" "$WORK/recover.out" || {
		fail "vexfs-ublk recover --id $UBLK_ID did not print $UBLK_DEVICE"
		return
	}
	run "$TIMEOUT_LONG_S" "$VEXFS_HWTEST" check --device "$UBLK_DEVICE" \
		--generation "$FILL_GENERATION" --bytes "$FILL_BYTES" || {
		fail "$UBLK_DEVICE: vexfs-hwtest check after recovery $RUN_RESULT"
		return
	}
	pass "$UBLK_DEVICE: filled generation $FILL_GENERATION ($FILL_BYTES), daemon $pid killed -9, recovered, data intact"
}

step5_del() {
	step_begin 5 ublk-del
	if [ -z "$STEP4_DEVICE" ]; then
		# Step 4 left nothing behind: deletion is still worth testing.
		ublk_add || {
			fail "$FAIL_DETAIL"
			return
		}
		STEP4_DEVICE=$UBLK_DEVICE
	fi
	id=${STEP4_DEVICE#/dev/ublkb}
	pid=$(ublk_daemon_pid "$id")
	ublk_del "$id" || {
		fail "vexfs-ublk del --id $id $RUN_RESULT"
		return
	}
	STEP4_DEVICE=""
	wait_until "$SETTLE_TIMEOUT_S" nodes_gone "$id" || {
		fail "/dev/ublkb$id or /dev/ublkc$id still there ${SETTLE_TIMEOUT_S} s after del"
		return
	}
	ublk_listed "$id"
	case $? in
	0)
		fail "vexfs-ublk list still shows ublkb$id"
		return
		;;
	2)
		fail "vexfs-ublk list $RUN_RESULT"
		return
		;;
	esac
	if [ -n "$pid" ] && ! wait_until "$SETTLE_TIMEOUT_S" pid_gone "$pid"; then
		fail "daemon $pid still running after del"
		return
	fi
	pass "/dev/ublkb$id: del removed both nodes, list no longer shows it, daemon ${pid:-?} exited"
}

# ---------------------------------------------------------------- main

# Runs on every exit, failures and signals included: nothing stays mounted,
# no device we added stays behind.
cleanup() {
	trap - EXIT INT TERM
	STEP_LOG=$WORK/cleanup.log
	for mnt in "$WORK/vexfs" "$WORK/ext4"; do
		is_mounted "$mnt" && unmount "$mnt"
	done
	for id in $OUR_IDS; do
		ublk_del "$id" || echo "e2e.sh: could not delete ublk device $id" >&2
	done
	if [ "$WORK_OWNED" = 1 ] && not_mounted "$WORK/vexfs" && not_mounted "$WORK/ext4"; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -e "$IMAGE" ]; then
	truncate -s "$IMAGE_SIZE" "$IMAGE" || exit 2
fi
echo "E2E START target=$TARGET steps=$(echo "$STEPS" | tr ' ' ,) image=$IMAGE"

for step in $STEPS; do
	case $step in
	1) step1_ublk_verify ;;
	2) step2_ext4 ;;
	3) step3_vexfs ;;
	4) step4_recover ;;
	5) step5_del ;;
	*) echo "e2e.sh: no step '$step'" >&2 ;;
	esac
done

echo "E2E DONE passed=$PASSED failed=$FAILED"
[ "$FAILED" -eq 0 ]
