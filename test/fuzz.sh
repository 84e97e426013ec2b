#!/usr/bin/env bash
# test/fuzz.sh - fuzz the conversion path on a throwaway cluster
#
# Builds and installs the extension, starts a cluster, and runs
# test/fuzz_convert.py (10 000 mutated export files by default) through the
# real conversion path.  Not part of test/run_tests.sh: it takes minutes.
#
#   test/fuzz.sh [--iterations N] [--seed S] [--save DIR]

source "$(dirname "$0")/lib.sh"

ensure_packages
build_and_install
start_work
start_cluster
as_pg "$PYTHON" "$WORK/src/test/fuzz_convert.py" "$@"
