#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Print, one per line and in load order, the module files needed to load the
# given modules, dependencies first.
#
#   tests/vm/modules.sh MODDIR MODULE...
#
# MODULE is a module name (looked up under MODDIR), or a path to a .ko file
# (an out-of-tree module), or ?NAME for a module that may be missing or
# built in. Modules built into the kernel (modules.builtin) are skipped.
set -euo pipefail

moddir=$1
shift

declare -A path_of=() seen=()
while IFS= read -r f; do
	name=${f##*/}
	name=${name%%.ko*}
	path_of[${name//-/_}]=$f
done < <(find "$moddir/kernel" "$moddir/updates" "$moddir/extra" -name '*.ko*' 2>/dev/null)

builtin() {
	[[ -f $moddir/modules.builtin ]] &&
		grep -qE "/${1}\.ko\$|/${1//_/-}\.ko\$" "$moddir/modules.builtin"
}

# Emit FILE after its dependencies.
visit_file() {
	local file=$1 key=$2 dep deps
	[[ -n ${seen[$key]:-} ]] && return 0
	seen[$key]=1
	deps=$(modinfo -F depends "$file")
	for dep in ${deps//,/ }; do
		visit_name "$dep" required
	done
	echo "$file"
}

visit_name() {
	local name=${1//-/_} need=$2
	if [[ -n ${path_of[$name]:-} ]]; then
		visit_file "${path_of[$name]}" "$name"
	elif builtin "$name" || [[ $need == optional ]]; then
		return 0
	else
		echo "modules.sh: module $name not found under $moddir" >&2
		return 1
	fi
}

for m in "$@"; do
	case $m in
	*.ko | *.ko.xz | *.ko.zst)
		[[ -f $m ]] || { echo "modules.sh: no such module file: $m" >&2; exit 1; }
		name=${m##*/}
		visit_file "$(readlink -f "$m")" "${name%%.ko*}"
		;;
	\?*) visit_name "${m#\?}" optional ;;
	*) visit_name "$m" required ;;
	esac
done
