#!/bin/sh
# Stand-in for olddefconfig: keep the last value of each option, select HAVE_FUTEX_ROBUST_UNLOCK,
# and let FUTEX_ROBUST_UNLOCK stick only when FUTEX and RSEQ are set, as its def_bool says.
cfg=$1
awk '
/^CONFIG_[A-Z0-9_]+=/ { split($0, kv, "="); val[kv[1]] = substr($0, length(kv[1]) + 2); next }
/^# CONFIG_[A-Z0-9_]+ is not set/ { val[$2] = "n"; next }
END {
	val["CONFIG_HAVE_FUTEX_ROBUST_UNLOCK"] = "y"
	if (val["CONFIG_RSEQ"] != "y" || val["CONFIG_FUTEX"] != "y") val["CONFIG_FUTEX_ROBUST_UNLOCK"] = "n"
	for (k in val) {
		if (val[k] == "n") printf "# %s is not set\n", k
		else if (k ~ /^CONFIG_(FUTEX|RSEQ|GENERIC_IRQ_ENTRY|HAVE_FUTEX_ROBUST_UNLOCK|FUTEX_ROBUST_UNLOCK|X86|IA32_EMULATION)$/) printf "%s=%s\n", k, val[k]
	}
}' "$cfg" | sort > "$cfg.new"
mv "$cfg.new" "$cfg"
