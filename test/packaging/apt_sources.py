#!/usr/bin/python3
"""The Debian archives this machine's apt uses for a suite and its companions.

Usage: apt_sources.py SUITE
Prints "URI SUITE COMPONENTS SIGNED-BY" (components comma-separated,
SIGNED-BY "-" when not given) for every enabled "deb" entry of
/etc/apt/sources.list and /etc/apt/sources.list.d/*.list and *.sources
(one-line and deb822 formats) whose suite is SUITE or SUITE-<something>
(bookworm, bookworm-updates, bookworm-security), in the order apt reads
them.  test/suites/17-deb.sh builds its chroot from these, so no mirror is
named in the repository.
"""
import glob
import re
import sys


def wanted(suite, s):
    return s == suite or s.startswith(suite + "-")


def one_line(path, suite):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return
    for line in lines:
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^deb\s+(\[[^]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line)
        if not m or not wanted(suite, m.group(3)):
            continue
        sb = re.search(r"signed-by=([^\s\]]+)", m.group(1) or "")
        yield m.group(2), m.group(3), m.group(4).split(), sb.group(1) if sb else ""


def deb822(path, suite):
    for para in re.split(r"\n\s*\n", open(path).read()):
        fields, key = {}, None
        for line in para.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
                continue
            k, _, v = line.partition(":")
            key = k.strip().lower()
            fields[key] = v.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        sb = fields.get("signed-by", "")
        sb = "" if "\n" in sb else sb  # an inline key is not a file to use
        for uri in fields.get("uris", "").split():
            for s in fields.get("suites", "").split():
                if wanted(suite, s):
                    yield uri, s, fields.get("components", "main").split(), sb


def main():
    suite = sys.argv[1]
    entries = []
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        entries += one_line(path, suite)
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        entries += deb822(path, suite)
    for uri, s, components, signed_by in entries:
        print(uri, s, ",".join(components), signed_by or "-")


main()
