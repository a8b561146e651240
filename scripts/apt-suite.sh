# SPDX-License-Identifier: MIT
#
# Sourced by scripts/fetch-kernel.sh and scripts/fetch-debs.sh: apt for
# another Debian suite, in .cache/apt-SUITE/, without touching the
# machine's own apt configuration or package state.
#
#   apt_suite_init TOP SUITE PROG
#
# sets apt_dir and the array apt_opts (pass it to apt-get and apt-cache)
# and downloads the suite's package lists. The mirror URIs come from the
# machine's apt sources at run time; none are written into the repository.
# PROG names the caller in messages. Returns non-zero on failure.

# The archive URIs of the machine's main (non-security) Debian sources.
apt_suite_mirror_uris() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		awk '
			/^[[:space:]]*$/ { if (uris != "" && suites !~ /security/) print uris; uris = ""; suites = ""; next }
			/^URIs:/   { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
			/^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
			END { if (uris != "" && suites !~ /security/) print uris }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		awk '$1 == "deb" && $3 !~ /security/ { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f"
	done
}

apt_suite_init() {
	local top=$1 suite=$2 prog=$3 uris sources

	apt_dir=$top/.cache/apt-$suite
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" || return 1
	uris=$(apt_suite_mirror_uris | tr ' ' '\n' | grep -E '^(https?|file)://' |
		sort -u | paste -sd ' ')
	if [[ -z $uris ]]; then
		echo "$prog: no Debian mirror URI found in /etc/apt sources" >&2
		return 1
	fi
	sources=$apt_dir/sources.sources
	cat >"$sources" <<SRC
Types: deb
URIs: $uris
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	# Status /dev/null: resolve dependencies as on an empty system.
	apt_opts=(
		-o "Dir::Etc::SourceList=$sources"
		-o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		-o Dir::State::Status=/dev/null
		-o Debug::NoLocking=1
		-o APT::Sandbox::User=root
	)
	echo "$prog: updating package lists for $suite" >&2
	apt-get "${apt_opts[@]}" -qq update
}
