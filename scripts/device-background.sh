#!/usr/bin/env bash
# Work longer than one device call (10 minutes) on the H200 machine: `start` runs a command detached
# (its own process session, so it outlives the call while the machine stays held) with $OUT pointed at
# /tmp/background; `wait S` waits up to S seconds for it to end, then copies what it wrote to $OUT.
# The command runs in its own copy of the tree (/tmp/background-tree): each device call rewrites the
# working tree, and a worker importing a module just then fails (one cw10 seed was lost that way).
# Usage (device tool):  scripts/device-background.sh start scripts/device-imitation.sh SPEC ...
#                       scripts/device-background.sh wait 580      (call again while it says "running")
# The machine goes back 30 s after a call ends, and the detached work with it: call `wait` again at
# once (read the copied files after the last one), and leave it enough of the session's device time.
set -uo pipefail
DIR=/tmp/background
case "${1:-}" in
  start)
    shift
    rm -rf "$DIR" "$DIR-tree" && mkdir -p "$DIR" "$DIR-tree"  # nothing of an earlier run on a machine still held
    tar --exclude=./.git -cf - . | tar -xf - -C "$DIR-tree" && cd "$DIR-tree" || exit 1
    OUT="$DIR" setsid nohup bash -c '"$@"; echo $? > '"$DIR"'/exit-code' _ "$@" > "$DIR/log.txt" 2>&1 < /dev/null &
    echo "started: $*" ;;
  wait)
    end=$(( SECONDS + ${2:-580} ))
    while [ ! -f "$DIR/exit-code" ] && [ $SECONDS -lt $end ]; do sleep 5; done
    cp "$DIR"/* "$OUT"/ 2>/dev/null
    if [ -f "$DIR/exit-code" ]; then echo "ended with $(cat "$DIR/exit-code")"; else echo "running"; fi
    tail -n 30 "$DIR/log.txt" ;;
  *)
    echo "usage: $0 start COMMAND ... | wait SECONDS" >&2; exit 2 ;;
esac
