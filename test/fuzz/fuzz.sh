#!/usr/bin/env bash
# test/fuzz/fuzz.sh - fuzz the conversion path on a throwaway cluster
#
# Builds and installs the extension, starts a cluster, and runs
# test/fuzz/fuzz_convert.py (10 000 mutated export files by default) through the
# real conversion path, then test/fuzz/fuzz_jsonb.py (2 000 files of random
# objects served by the fake, each jsonb column compared with jsonb_in).
# Not part of test/run_tests.sh: it takes minutes.  Exits non-zero if
# either finds a crash or a disagreement.
#
#   test/fuzz/fuzz.sh [--iterations N] [--seed S] [--save DIR]   (fuzz_convert.py's)

source "$(dirname "$0")/../lib.sh"

start_everything
rc=0
as_pg "$PYTHON" "$WORK/src/test/fuzz/fuzz_convert.py" "$@" || rc=1
as_pg "$PYTHON" "$WORK/src/test/fuzz/fuzz_jsonb.py" || rc=1
exit $rc
