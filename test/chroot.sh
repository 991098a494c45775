#!/usr/bin/env bash
# A Debian chroot with a PostgreSQL version this machine does not run, for
# building and testing apikey there (the binaries need their suite's C library).
#
#   bash test/chroot.sh dir PGVER            create or reuse it; prints its directory
#   bash test/chroot.sh run PGVER CMD...     run CMD in it as root (/proc and
#                                            /dev/shm mounted for the call)
#   bash test/chroot.sh copy PGVER DEST      copy the working tree to DEST inside
#                                            it, owned by postgres; prints DEST
#   EXTRA_PACKAGES="p1 p2" ...               more packages (another test's needs)
#
# PGVER picks the Debian suite: 17 trixie, 18 sid, 19 experimental on top of
# sid (postgresql-19, postgresql-server-dev-19, libpq-dev and libpq5 from
# experimental, the rest from sid).  The chroots live outside the repository,
# in $APIKEY_CHROOTS (default /var/lib/apikey/chroot), one per version, and are
# reused; a stamp file in each records the suite, mirror and package list, and
# a changed list rebuilds the chroot.  The mirror is the one this machine's
# apt uses.  Anything that cannot be fetched or installed is an error (exit
# status 1 and a line "FAILED: ..."), never a silent skip.  Needs root.
set -euo pipefail

CHROOTS=${APIKEY_CHROOTS:-/var/lib/apikey/chroot}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "FAILED: chroot: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 dir|run|copy PGVER [...]"
cmd=$1 ver=$2
shift 2
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"

from_experimental=()
case "$ver" in
17) suite=trixie ;;
18) suite=sid ;;
19) suite=sid from_experimental=(postgresql-19 postgresql-server-dev-19 libpq-dev libpq5) ;;
*) die "no chroot known for PostgreSQL $ver (17, 18 and 19 are)" ;;
esac
dir=$CHROOTS/pg$ver-$suite${from_experimental:+-experimental}

# The Debian mirror this machine's apt is configured with (deb822 or one-line)
mirror() {
	local m
	m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		sed -n 's|^URIs: *\(https\?://[^ ]*/debian\)/\?$|\1|p' | sed -n 1p)
	[ -n "$m" ] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n 's|^deb \+\(\[[^]]*\] \+\)\?\(https\?://[^ ]*/debian\)/\? .*|\2|p' | sed -n 1p)
	[ -n "$m" ] || die "no Debian mirror in /etc/apt/sources.list*"
	echo "$m"
}

# What building and the version-independent suites (regression files,
# isolation specs, TAP tests) need; not the host-only tools.
packages=(
	make gcc libc6-dev libssl-dev util-linux perl libipc-run-perl
	"postgresql-$ver" "postgresql-server-dev-$ver"
	${EXTRA_PACKAGES:-}
)

mounted=()
cleanup() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
	done
	mounted=()
}
trap cleanup EXIT

mount_for_run() {
	mountpoint -q "$dir/proc" || { mount -t proc proc "$dir/proc" && mounted+=("$dir/proc"); }
	mkdir -p "$dir/dev/shm"
	mountpoint -q "$dir/dev/shm" ||
		{ mount -t tmpfs -o mode=1777,size=512m shm "$dir/dev/shm" && mounted+=("$dir/dev/shm"); }
	[ -c "$dir/dev/null" ] || die "$dir/dev/null is not a device"
}

# create (or recreate) the chroot when its stamp differs from what we want
ensure() {
	local url stamp want
	url=$(mirror)
	want=$(printf 'suite %s\nmirror %s\nexperimental %s\npackages %s\n' \
		"$suite" "$url" "${from_experimental[*]:-}" "${packages[*]}")
	stamp=$dir/.apikey-stamp
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		return 0
	fi
	cleanup
	# (a chroot whose stamp differs is replaced only once the new one is ready)
	[ -e "$dir" ] && echo "chroot $dir: package list changed, rebuilding" >&2
	rm -rf --one-file-system "$dir.new"
	mkdir -p "$CHROOTS"
	echo "chroot $dir: debootstrap $suite from $url" >&2
	local t0=$SECONDS
	debootstrap --variant=minbase "$suite" "$dir.new" "$url" >"$CHROOTS/pg$ver.debootstrap.log" 2>&1 ||
		{ rm -rf --one-file-system "$dir.new"; die "debootstrap $suite failed (see $CHROOTS/pg$ver.debootstrap.log)"; }
	# sid's Release may read as expired on a mirror; nothing else changes
	echo 'Acquire::Check-Valid-Until "false";' >"$dir.new/etc/apt/apt.conf.d/99apikey"
	# no services started by package scripts, no cluster created by postgresql-common
	printf '#!/bin/sh\nexit 101\n' >"$dir.new/usr/sbin/policy-rc.d"
	chmod 755 "$dir.new/usr/sbin/policy-rc.d"
	mkdir -p "$dir.new/etc/postgresql-common"
	echo 'create_main_cluster = false' >"$dir.new/etc/postgresql-common/createcluster.conf"
	cp /etc/resolv.conf "$dir.new/etc/resolv.conf" 2>/dev/null || true
	if [ ${#from_experimental[@]} -gt 0 ]; then
		echo "deb $url experimental main" >"$dir.new/etc/apt/sources.list.d/experimental.list"
	fi
	local old=$dir
	dir=$dir.new
	mount_for_run
	local pkgs=() p
	for p in "${packages[@]}"; do
		[[ " ${from_experimental[*]:-} " == *" $p "* ]] || pkgs+=("$p")
	done
	for p in "${from_experimental[@]}"; do pkgs+=("$p/experimental"); done
	if ! chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
			>"$CHROOTS/pg$ver.apt.log" 2>&1 ||
		! chroot "$dir" env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends "${pkgs[@]}" \
			>>"$CHROOTS/pg$ver.apt.log" 2>&1; then
		tail -n 20 "$CHROOTS/pg$ver.apt.log" >&2
		cleanup
		rm -rf --one-file-system "$dir"
		die "installing ${pkgs[*]} in the $suite chroot failed (see $CHROOTS/pg$ver.apt.log)"
	fi
	[ -x "$dir/usr/lib/postgresql/$ver/bin/pg_config" ] || die "no pg_config $ver in the chroot"
	chroot "$dir" apt-get clean
	cleanup
	dir=$old
	if [ -e "$dir" ]; then
		umount "$dir/proc" "$dir/dev/shm" 2>/dev/null || true
		rm -rf --one-file-system "$dir"
	fi
	mv "$dir.new" "$dir"
	echo "$want" >"$stamp"
	echo "chroot $dir: ready after $((SECONDS - t0)) s" >&2
}

# one user of a chroot at a time (creation and mounts)
mkdir -p "$CHROOTS"
exec 8>"$CHROOTS/.pg$ver.lock"
flock 8

case "$cmd" in
dir)
	ensure
	echo "$dir"
	;;
run)
	ensure
	mount_for_run
	rc=0
	chroot "$dir" env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
		HOME=/root LANG=C.UTF-8 "$@" || rc=$?
	cleanup
	exit $rc
	;;
copy)
	[ $# -eq 1 ] || die "usage: $0 copy PGVER DEST"
	ensure
	dest=$1
	rm -rf --one-file-system "${dir:?}$dest"
	mkdir -p "$dir$dest"
	# the working tree as git sees it (committed or not), no build products
	git -C "$REPO" ls-files -z --cached --others --exclude-standard |
		(cd "$REPO" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
		tar -C "$REPO" --null -T - -cf - | tar -C "$dir$dest" -xf -
	chroot "$dir" chown -R postgres: "$dest"
	echo "$dest"
	;;
*) die "unknown command $cmd (dir, run, copy)" ;;
esac
