#!/usr/bin/env bash
# Install what building and testing apikey needs, when it is missing.
# Debian 12 with PostgreSQL 15; needs root (or sudo) only to install.
set -euo pipefail

PGVER=${PGVER:-15}
# package list: what a full test run uses (debootstrap: the chroots of the
# other PostgreSQL versions, test/chroot.sh)
packages=(
	make gcc
	"postgresql-$PGVER" "postgresql-server-dev-$PGVER"
	libipc-run-perl pgbouncer python3 python3-psycopg2 python3-psycopg python3-cryptography curl openssl
	clang libclang-rt-14-dev
	# the Debian package (17-deb): dpkg-buildpackage and dh with pg_buildext
	# (debhelper brings dpkg-dev), its build dependencies (debian/control:
	# postgresql-all is the server and headers of each supported version, and
	# pg_virtualenv for the build-time test), and a chroot to install it into
	debhelper postgresql-all debootstrap
	# pg_auto_failover, for test/t/081_pg_auto_failover.pl (a monitor and two nodes)
	"postgresql-$PGVER-auto-failover"
)
[ "${1:-}" = "--minimal" ] && packages=(make gcc "postgresql-$PGVER" "postgresql-server-dev-$PGVER")

missing=()
for p in "${packages[@]}"; do
	[[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
