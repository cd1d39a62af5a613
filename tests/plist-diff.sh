#!/bin/sh
# plist-diff.sh - run the differential plist test (tests/plist-diff.py)
# over every fuzz corpus; "make check" runs it from the build directory.
set -eu
srcdir=${PICOMDM_TEST_DATA:-$(dirname "$0")/data}/..
exec /usr/bin/python3 "$srcdir/plist-diff.py" ./tests/plist-canon \
    "$srcdir"/fuzz/corpus*
