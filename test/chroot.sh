#!/usr/bin/env bash
# The Debian chroots of the tests: one per PostgreSQL version this machine
# does not run, for building and testing apikey there (the binaries need
# their suite's C library), and a clean one of this machine's own release
# for installing the Debian package (test/suites/17-deb.sh).
#
#   bash test/chroot.sh dir TARGET           create or reuse it; prints its directory
#   bash test/chroot.sh run TARGET CMD...    run CMD in it as root (/proc and
#                                            /dev/shm mounted for the call)
#   bash test/chroot.sh copy TARGET DEST     copy the working tree to DEST inside
#                                            it, owned by postgres; prints DEST
#   EXTRA_PACKAGES="p1 p2" ...               more packages (another test's needs;
#                                            a version's chroot only)
#   . test/chroot.sh                         the same steps as functions
#                                            (chroot_select, chroot_lock,
#                                            chroot_ensure, chroot_mount,
#                                            chroot_exec, ...), for a test that
#                                            holds a chroot through many steps
#
# TARGET is a PostgreSQL version, which picks the Debian suite: 17 trixie,
# 18 sid, 19 experimental on top of sid (postgresql-19,
# postgresql-server-dev-19, libpq-dev and libpq5 from experimental, the rest
# from sid), from the mirror this machine's apt uses; these chroots have what
# building and the version-independent suites need.  Or TARGET is "deb":
# bookworm, this machine's release, with postgresql-15 and nothing else, from
# the archives this machine's apt uses for bookworm and its companions
# (bookworm-updates, bookworm-security), each checked with the key apt here
# checks it with (test/packaging/apt_sources.py); it stays as created: it is
# reused only while its installed packages are those it was made with.
#
# The chroots live outside the repository, in $APIKEY_CHROOTS (default
# /var/lib/apikey/chroot): pgNN-SUITE and bookworm-deb, and are reused; a
# stamp file in each records the suite, archives and package list, and a
# changed one makes the chroot anew (the old one is replaced only once the new
# one is ready).  One user of a chroot at a time (a lock per chroot).
# Anything that cannot be fetched or installed is an error (exit status 1 and
# a line "FAILED: ..."), never a silent skip.  Needs root.

CHROOTS=${APIKEY_CHROOTS:-/var/lib/apikey/chroot}
chroot_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chroot_mounted=()

chroot_fail() {
	echo "FAILED: chroot: $*" >&2
	return 1
}

# chroot_select TARGET: the chroot the other functions work on (sets
# chroot_target, chroot_ver, chroot_suite, chroot_dir, chroot_tag (the name
# of its lock and logs), chroot_packages, chroot_experimental,
# chroot_pristine)
chroot_select() {
	chroot_experimental=()
	chroot_pristine=
	case "$1" in
	17) chroot_ver=17 chroot_suite=trixie ;;
	18) chroot_ver=18 chroot_suite=sid ;;
	19) chroot_ver=19 chroot_suite=sid chroot_experimental=(postgresql-19 postgresql-server-dev-19 libpq-dev libpq5) ;;
	deb) chroot_ver=15 chroot_suite=bookworm chroot_pristine=1 ;;
	*) chroot_fail "no chroot known for $1 (17, 18, 19 and deb are)"; return 1 ;;
	esac
	chroot_target=$1
	if [ "$1" = deb ]; then
		chroot_tag=$chroot_suite-deb
		chroot_dir=$CHROOTS/$chroot_tag
		# the server the package needs, nothing more (not EXTRA_PACKAGES)
		chroot_packages=("postgresql-$chroot_ver")
	else
		chroot_tag=pg$chroot_ver
		chroot_dir=$CHROOTS/pg$chroot_ver-$chroot_suite${chroot_experimental:+-experimental}
		# what building and the version-independent suites (regression
		# files, isolation specs, TAP tests) need; not the host-only tools
		chroot_packages=(
			make gcc libc6-dev libssl-dev util-linux perl libipc-run-perl
			"postgresql-$chroot_ver" "postgresql-server-dev-$chroot_ver"
			${EXTRA_PACKAGES:-}
		)
	fi
}

# The Debian mirror this machine's apt is configured with (deb822 or one-line)
chroot_mirror() {
	local m
	m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		sed -n 's|^URIs: *\(https\?://[^ ]*/debian\)/\?$|\1|p' | sed -n 1p)
	[ -n "$m" ] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n 's|^deb \+\(\[[^]]*\] \+\)\?\(https\?://[^ ]*/debian\)/\? .*|\2|p' | sed -n 1p)
	[ -n "$m" ] || { chroot_fail "no Debian mirror in /etc/apt/sources.list*"; return 1; }
	echo "$m"
}

# The chroot's archives, a line each: "URI SUITE COMPONENTS SIGNED-BY"
# (components comma-separated, SIGNED-BY "-" for debootstrap's and apt's
# default keyring)
chroot_archives() {
	local url
	if [ "$chroot_target" = deb ]; then
		/usr/bin/python3 "$chroot_repo/test/packaging/apt_sources.py" "$chroot_suite"
	else
		url=$(chroot_mirror) || return 1
		echo "$url $chroot_suite main -"
		[ ${#chroot_experimental[@]} -eq 0 ] || echo "$url experimental main -"
	fi
}

# chroot_stamp ARCHIVES: what the stamp of a chroot made now would say (each
# kind in the form its chroots have always recorded, so that they are reused)
chroot_stamp() {
	if [ "$chroot_target" = deb ]; then
		printf 'suite %s\nsources\n%s\npackages %s\n' "$chroot_suite" "$1" "${chroot_packages[*]}"
	else
		printf 'suite %s\nmirror %s\nexperimental %s\npackages %s\n' \
			"$chroot_suite" "${1%% *}" "${chroot_experimental[*]:-}" "${chroot_packages[*]}"
	fi
}

# chroot_in DIR CMD...: run CMD in the chroot DIR as root, with nothing of
# this environment (TMPDIR, PGBIN, ...); chroot_exec CMD...: in the selected one
chroot_in() {
	local dir=$1
	shift
	chroot "$dir" env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
chroot_exec() { chroot_in "$chroot_dir" "$@"; }

# The packages installed in the chroot DIR, "name version" a line, sorted
chroot_package_set() {
	chroot_in "$1" dpkg-query -W -f '${Package} ${Version}\n' | sort
}

# chroot_mount [DIR]: /proc and a /dev/shm anyone may write to (PostgreSQL
# needs both), mounted where they are not; chroot_umount undoes what it mounted
chroot_mount() {
	local dir=${1:-$chroot_dir}
	mountpoint -q "$dir/proc" || { mount -t proc proc "$dir/proc" && chroot_mounted+=("$dir/proc"); }
	mkdir -p "$dir/dev/shm"
	mountpoint -q "$dir/dev/shm" ||
		{ mount -t tmpfs -o mode=1777,size=512m shm "$dir/dev/shm" && chroot_mounted+=("$dir/dev/shm"); }
	if ! mountpoint -q "$dir/proc" || ! mountpoint -q "$dir/dev/shm"; then
		chroot_fail "cannot mount /proc and /dev/shm in $dir"
		return 1
	fi
	[ -c "$dir/dev/null" ] || { chroot_fail "$dir/dev/null is not a device"; return 1; }
}
chroot_umount() {
	local i
	for ((i = ${#chroot_mounted[@]} - 1; i >= 0; i--)); do
		umount "${chroot_mounted[$i]}" 2>/dev/null || umount -l "${chroot_mounted[$i]}" 2>/dev/null || true
	done
	chroot_mounted=()
}

# One user of a chroot at a time (creation, mounts, the tests in it): the
# lock is held on file descriptor 8 until the shell exits
chroot_lock() {
	mkdir -p "$CHROOTS" || return 1
	exec 8>"$CHROOTS/.$chroot_tag.lock" || return 1
	flock 8
}

# chroot_copy_worktree DEST: the working tree as git sees it (committed or
# not), no build products, copied into the existing directory DEST
chroot_copy_worktree() {
	git -C "$chroot_repo" ls-files -z --cached --others --exclude-standard |
		(cd "$chroot_repo" && xargs -0 -r sh -c 'for f; do [ ! -e "$f" ] || printf "%s\0" "$f"; done' sh) |
		tar -C "$chroot_repo" --null -T - -cf - | tar -C "$1" -xf -
}

# chroot_ensure: the selected chroot, reused when its stamp is what it would
# be made from now (and, for a pristine one, its packages are those it was
# made with), else made anew; sets chroot_state ("reused" or "created in N s")
chroot_ensure() {
	local archives want new uri keyring t0 opts=() pkgs=() p a_uri a_suite a_comp a_key sb
	local aptlog=$CHROOTS/$chroot_tag.apt.log bootlog=$CHROOTS/$chroot_tag.debootstrap.log
	archives=$(chroot_archives) || return 1
	[ -n "$archives" ] || { chroot_fail "no Debian archive for $chroot_suite in /etc/apt/sources.list*"; return 1; }
	want=$(chroot_stamp "$archives")
	if [ -f "$chroot_dir/.apikey-stamp" ] && [ "$(cat "$chroot_dir/.apikey-stamp")" = "$want" ]; then
		if [ -z "$chroot_pristine" ] ||
			[ "$(chroot_package_set "$chroot_dir")" = "$(cat "$chroot_dir/.apikey-packages" 2>/dev/null)" ]; then
			chroot_state=reused
			return 0
		fi
		echo "chroot $chroot_dir: its packages are not those it was made with, making it anew" >&2
	elif [ -e "$chroot_dir" ]; then
		echo "chroot $chroot_dir: suite, archives or package list changed, making it anew" >&2
	fi
	command -v debootstrap >/dev/null || { chroot_fail "debootstrap is not installed (apt-get install debootstrap)"; return 1; }
	uri=$(awk -v s="$chroot_suite" '$2 == s {print $1; exit}' <<<"$archives")
	keyring=$(awk -v s="$chroot_suite" '$2 == s {print $4; exit}' <<<"$archives")
	[ -n "$uri" ] || { chroot_fail "no Debian archive for the suite $chroot_suite itself in /etc/apt/sources.list*"; return 1; }
	chroot_umount
	new=$chroot_dir.new
	rm -rf --one-file-system "$new"
	mkdir -p "$CHROOTS"
	echo "chroot $chroot_dir: debootstrap $chroot_suite from $uri" >&2
	t0=$SECONDS
	grep -q '^https:' <<<"$archives" && opts+=(--include=ca-certificates)
	# the archive's signature is checked with the key apt here uses for it
	[ "$keyring" = - ] || opts+=(--keyring="$keyring")
	if ! debootstrap --variant=minbase "${opts[@]}" "$chroot_suite" "$new" "$uri" >"$bootlog" 2>&1; then
		tail -n 5 "$bootlog" >&2
		rm -rf --one-file-system "$new"
		chroot_fail "debootstrap $chroot_suite failed (see $bootlog)"
		return 1
	fi
	: >"$new/etc/apt/sources.list"
	while read -r a_uri a_suite a_comp a_key; do
		sb=
		if [ "$a_key" != - ]; then
			sb="[signed-by=$a_key] "
			[ -e "$new$a_key" ] || { mkdir -p "$new$(dirname "$a_key")" && cp "$a_key" "$new$a_key"; }
		fi
		echo "deb $sb$a_uri $a_suite ${a_comp//,/ }" >>"$new/etc/apt/sources.list"
	done <<<"$archives"
	# sid's Release may read as expired on a mirror; nothing else changes
	echo 'Acquire::Check-Valid-Until "false";' >"$new/etc/apt/apt.conf.d/99apikey"
	# no service started by a package script, no cluster made by postgresql-common
	printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
	chmod 755 "$new/usr/sbin/policy-rc.d"
	mkdir -p "$new/etc/postgresql-common"
	echo 'create_main_cluster = false' >"$new/etc/postgresql-common/createcluster.conf"
	cp /etc/resolv.conf /etc/hosts "$new/etc/" 2>/dev/null
	for p in "${chroot_packages[@]}"; do
		[[ " ${chroot_experimental[*]:-} " == *" $p "* ]] || pkgs+=("$p")
	done
	for p in "${chroot_experimental[@]}"; do pkgs+=("$p/experimental"); done
	if ! chroot_mount "$new" ||
		! chroot_in "$new" apt-get update -q >"$aptlog" 2>&1 ||
		! chroot_in "$new" apt-get install -y -q --no-install-recommends \
			-o Dpkg::Options::=--force-confold "${pkgs[@]}" >>"$aptlog" 2>&1 ||
		[ ! -x "$new/usr/lib/postgresql/$chroot_ver/bin/pg_config" ]; then
		tail -n 20 "$aptlog" >&2
		chroot_umount
		rm -rf --one-file-system "$new"
		chroot_fail "installing ${pkgs[*]} in the $chroot_suite chroot failed (see $aptlog)"
		return 1
	fi
	chroot_in "$new" apt-get clean
	chroot_package_set "$new" >"$new/.apikey-packages"
	chroot_umount
	if [ -e "$chroot_dir" ]; then
		umount "$chroot_dir/proc" "$chroot_dir/dev/shm" 2>/dev/null
		rm -rf --one-file-system "$chroot_dir"
	fi
	mv "$new" "$chroot_dir" || { chroot_fail "cannot move $new to $chroot_dir"; return 1; }
	echo "$want" >"$chroot_dir/.apikey-stamp"
	chroot_state="created in $((SECONDS - t0)) s"
	echo "chroot $chroot_dir: ready after $((SECONDS - t0)) s" >&2
}

# --- the command -----------------------------------------------------------

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
set -euo pipefail

[ $# -ge 2 ] || chroot_fail "usage: $0 dir|run|copy TARGET [...]" || exit 1
cmd=$1
shift
[ "$(id -u)" -eq 0 ] || chroot_fail "needs root (debootstrap, chroot, mount)" || exit 1
chroot_select "$1" || exit 1
shift
trap chroot_umount EXIT
chroot_lock || chroot_fail "cannot lock $chroot_dir" || exit 1
chroot_ensure || exit 1

case "$cmd" in
dir)
	echo "$chroot_dir"
	;;
run)
	chroot_mount || exit 1
	rc=0
	chroot_exec "$@" || rc=$?
	chroot_umount
	exit $rc
	;;
copy)
	[ $# -eq 1 ] || chroot_fail "usage: $0 copy TARGET DEST" || exit 1
	dest=$1
	rm -rf --one-file-system "${chroot_dir:?}$dest"
	mkdir -p "$chroot_dir$dest"
	chroot_copy_worktree "$chroot_dir$dest"
	chroot "$chroot_dir" chown -R postgres: "$dest"
	echo "$dest"
	;;
*) chroot_fail "unknown command $cmd (dir, run, copy)" || exit 1 ;;
esac
