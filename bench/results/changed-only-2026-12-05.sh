#!/bin/sh
# The one-file re-test both ways on Debian 7.3~rc7 (its tree's lock was free), timed.
cd /work/wt-changed
PY=/work/main/.venv/bin/python
one() {
  name=$1; shift
  start=$(date +%s.%N)
  $PY -m harness run --debian 7.3~rc7-1~exp1 --run-dir runs/rc7/$name "$@" > runs/rc7/$name.out 2>&1
  rc=$?
  end=$(date +%s.%N)
  echo "$name rc=$rc wall=$(echo "$end - $start" | bc) args=$*" >> runs/rc7/times.txt
}
one pristine
one no-fixup --series patches/mutants/no-fixup-call.patch --no-base
one no-fixup-changed-only --series patches/mutants/no-fixup-call.patch --no-base --changed-only
one pi-changed-only --series bench/one-file-pi.patch --no-base --changed-only
one pi --series bench/one-file-pi.patch --no-base
one restore
