#!/bin/sh
# Stand-in for the kernel's merge_config.sh -m -O DIR BASE FRAGMENT...: later lines win.
[ "$1" = -m ] && shift
[ "$1" = -O ] && { out=$2; shift 2; }
cat "$@" > "$out/.config.merged"
mv "$out/.config.merged" "$out/.config"
