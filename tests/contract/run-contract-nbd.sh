#!/bin/sh
# The contract program again, its devices NBD exports of the same image
# files (nbdkit's file plugin on unix sockets): the seed's calls behave on
# a remote region exactly as on a local one.
exec "${SHELL:-/bin/sh}" "$(dirname "$0")/run-contract.sh" nbd
