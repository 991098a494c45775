#!/usr/bin/python3
"""Checks of a release archive made by `make dist` (test/suites/15-packaging.sh).

Usage: check_dist.py ARCHIVE.zip
Prints "ok   <check>" or "FAIL <check>: <why>" per check.  The archive must
hold the whole distribution under apikey-<version>/, nothing built or left
by a test run, a META.json that is valid PGXN metadata (meta spec 1.0)
whose versions are the control file's default_version, and the Debian
packaging (debian/) of the same version.
"""
import json
import os
import re
import sys
import zipfile

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")
TERM = re.compile(r"^[^/\\\s\x00-\x1f\x7f]{2,}$")
TAG = re.compile(r"^[^/\\\x00-\x1f\x7f]{2,255}$")
LICENSES = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd",
            "freebsd", "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1",
            "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5",
            "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source",
            "restricted", "unrestricted", "unknown"}
TOP_KEYS = {"name", "abstract", "description", "version", "maintainer", "license",
            "provides", "prereqs", "resources", "generated_by", "meta-spec", "tags",
            "no_index", "release_status"}
PHASES = {"configure", "build", "test", "runtime", "develop"}
RELATIONS = {"requires", "recommends", "suggests", "conflicts"}
# what building or testing leaves in a work tree
ARTIFACTS = [r"\.o$", r"\.so$", r"\.bc$", r"\.pyc$", r"(^|/)__pycache__/", r"^regression\.",
             r"^results/", r"^tmp_check/", r"^log/", r"^dist/", r"^test/fuzz/build/",
             r"(^|/)output_iso/", r"\.zip$"]

failures = 0


def check(name, problems):
    global failures
    if problems:
        failures += 1
        print("FAIL %s: %s" % (name, "; ".join(problems)))
    else:
        print("ok   %s" % name)


def version_range(v):
    """0, or versions with optional operators, comma-separated (spec 1.0)."""
    if v == 0:
        return True
    return isinstance(v, str) and all(
        part.strip() == "0" or SEMVER.match(re.sub(r"^(==|!=|<=?|>=?)\s*", "", part.strip()))
        for part in v.split(","))


def meta_problems(meta, files):
    """What makes META.json invalid PGXN metadata (meta spec 1.0.0)."""
    p = []
    for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
        if key not in meta:
            p.append("required key %s missing" % key)
    for key in meta:
        if key not in TOP_KEYS and not re.match(r"^[xX]_.", key):
            p.append("unknown key %s" % key)
    if not TERM.match(str(meta.get("name", ""))):
        p.append("name is not a term")
    for key in ("abstract", "description", "generated_by"):
        if key in meta and not (isinstance(meta[key], str) and meta[key]):
            p.append("%s is not a non-empty string" % key)
    if not SEMVER.match(str(meta.get("version", ""))):
        p.append("version is not semver")
    m = meta.get("maintainer")
    if not ((isinstance(m, str) and m) or
            (isinstance(m, list) and m and all(isinstance(x, str) and x for x in m))):
        p.append("maintainer is not a string or a list of strings")
    lic = meta.get("license")
    if isinstance(lic, str):
        lic = [lic]
    if isinstance(lic, list):
        if not lic or any(x not in LICENSES for x in lic):
            p.append("license is not one of the spec's names")
    elif not (isinstance(lic, dict) and lic):
        p.append("license is neither a name, a list nor an object")
    spec = meta.get("meta-spec", {})
    if not (isinstance(spec, dict) and re.match(r"^1\.0\.\d+$", str(spec.get("version", "")))):
        p.append("meta-spec.version is not 1.0.x")
    provides = meta.get("provides")
    if not (isinstance(provides, dict) and provides):
        p.append("provides is not a non-empty object")
    else:
        for ext, e in provides.items():
            if not TERM.match(ext):
                p.append("provides: %s is not a term" % ext)
            if not isinstance(e, dict):
                p.append("provides.%s is not an object" % ext)
                continue
            for key in e:
                if key not in ("file", "version", "abstract", "docfile") and not key.startswith(("x_", "X_")):
                    p.append("provides.%s: unknown key %s" % (ext, key))
            if not SEMVER.match(str(e.get("version", ""))):
                p.append("provides.%s.version is not semver" % ext)
            for key in ("file", "docfile"):
                if key == "file" and key not in e:
                    p.append("provides.%s.file missing" % ext)
                if key in e and e[key] not in files:
                    p.append("provides.%s.%s %s is not in the archive" % (ext, key, e[key]))
    prereqs = meta.get("prereqs", {})
    if not isinstance(prereqs, dict):
        p.append("prereqs is not an object")
    else:
        for phase, rels in prereqs.items():
            if phase not in PHASES:
                p.append("prereqs: unknown phase %s" % phase)
                continue
            for rel, reqs in rels.items():
                if rel not in RELATIONS:
                    p.append("prereqs.%s: unknown relationship %s" % (phase, rel))
                    continue
                for name, v in reqs.items():
                    if not version_range(v):
                        p.append("prereqs.%s.%s.%s is not a version range" % (phase, rel, name))
    tags = meta.get("tags", [])
    if not (isinstance(tags, list) and all(isinstance(t, str) and TAG.match(t) for t in tags)):
        p.append("tags are not a list of tags")
    if "release_status" in meta and meta["release_status"] not in ("stable", "testing", "unstable"):
        p.append("release_status is not stable, testing or unstable")
    resources = meta.get("resources", {})
    for key, value in resources.items() if isinstance(resources, dict) else []:
        for field, u in (value.items() if isinstance(value, dict) else [(key, value)]):
            if field != "type" and not re.match(r"^(https?|git|mailto):", str(u)):
                p.append("resources.%s: %s is not a URI" % (key, u))
    return p


def main():
    zpath = sys.argv[1]
    with zipfile.ZipFile(zpath) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        top = {n.split("/", 1)[0] for n in z.namelist()}
        prefix = top.pop() + "/" if len(top) == 1 else None
        check("one top-level directory apikey-<version>/",
              [] if prefix and re.match(r"^apikey-[0-9.]+/$", prefix) else ["top level: %s" % sorted(top)])
        if not prefix:
            return
        files = {n[len(prefix):] for n in names}

        def read(name):
            return z.read(prefix + name).decode() if name in files else ""

        control = read("apikey.control")
        m = re.search(r"^default_version = '([^']*)'", control, re.M)
        version = m.group(1) if m else None
        check("apikey.control with a default_version", [] if version else ["not found"])
        check("the archive is named after default_version",
              [] if prefix == "apikey-%s/" % version else ["%s vs %s" % (prefix, version)])

        required = ["apikey.control", "META.json", "Makefile", "README.md", "LICENSE", "CHANGELOG.md"]
        check("control file, META.json, Makefile, README, LICENSE, CHANGELOG",
              ["%s missing" % f for f in required if f not in files])
        # the manual: the doc/ pages the README links to
        linked = sorted(set(re.findall(r"\]\((doc/[a-z0-9-]+\.md)", read("README.md"))))
        check("the manual: README.md and the %d doc/ pages it links to" % len(linked),
              ["%s missing" % f for f in linked if f not in files]
              or ([] if linked else ["the README links to no doc/ page"]))
        sources = [f for f in files if re.match(r"^src/[^/]+\.[ch]$", f)]
        sql = [f for f in files if re.match(r"^sql/apikey/[^/]+\.sql$", f)]
        makefile = read("Makefile")
        wanted = set(re.findall(r"src/[a-z_]+\.o", makefile))
        missing = ["%s.c" % o[:-2] for o in wanted if "%s.c" % o[:-2] not in files]
        missing += [s for s in re.findall(r"sql/apikey/[a-z_]+\.sql", makefile) if s not in files]
        check("the sources: every C file and SQL source the Makefile names (%d C, %d SQL)"
              % (len([s for s in sources if s.endswith('.c')]), len(sql)),
              missing or ([] if wanted and sql else ["the Makefile names none"]))
        released = [f for f in files if re.match(r"^sql/apikey--[0-9.]+(--[0-9.]+)?\.sql$", f)]
        generated = "sql/apikey--%s.sql" % version
        check("no test or build artifacts (objects, libraries, results, the generated %s)" % generated,
              sorted(f for f in files if f == generated or any(re.search(a, f) for a in ARTIFACTS)))
        check("released install and upgrade scripts (%s)" % ", ".join(sorted(released)),
              [] if released else ["none"])
        changelog = read("CHANGELOG.md")
        check("CHANGELOG.md has a section for %s" % version,
              [] if version and re.search(r"^## %s\b" % re.escape(version), changelog, re.M)
              else ["no '## %s' heading" % version])
        check("LICENSE is the PostgreSQL licence naming apikey developers",
              [] if re.search(r"Copyright \(c\) \d{4}(-\d{4})?, apikey developers", read("LICENSE"))
              and "IN NO EVENT SHALL apikey developers BE LIABLE" in read("LICENSE") else ["text not found"])

        try:
            meta = json.loads(read("META.json"))
        except ValueError as e:
            check("META.json is JSON", [str(e)])
            return
        check("META.json is valid PGXN metadata (meta spec 1.0)", meta_problems(meta, files))
        v = meta.get("version")
        pv = {k: e.get("version") for k, e in (meta.get("provides") or {}).items() if isinstance(e, dict)}
        check("META.json version %s and provides.apikey.version %s equal default_version %s"
              % (v, pv.get("apikey"), version),
              [] if v == version and pv.get("apikey") == version and meta.get("name") == "apikey"
              else ["they differ"])
        req = meta.get("prereqs", {}).get("runtime", {}).get("requires", {}).get("PostgreSQL")
        check("META.json requires PostgreSQL 15 or later", [] if req == "15.0.0" else ["got %r" % req])
        # the spec has only a minimum: which versions are tested is an x_ field
        pv = meta.get("x_postgresql_versions", {})
        tested = pv.get("tested", []) if isinstance(pv, dict) else []
        check("META.json x_postgresql_versions names the tested versions (%s), 15 among them, none below it"
              % ", ".join(tested),
              [] if "15" in tested and all(re.match(r"^\d+$", v) and int(v) >= 15 for v in tested)
              and pv.get("minimum") == "15" else ["got %r" % pv])

        # the Debian packaging ships with the source (dpkg-buildpackage -b
        # works from the unpacked archive), its version this release's
        debian = ["debian/%s" % f for f in ("control.in", "control", "rules", "pgversions", "copyright",
                                            "changelog", "source/format", "tests/control")]
        m = re.match(r"^apikey \(([^)-]+)-[^)]+\)", read("debian/changelog"))
        check("debian/ (pg_buildext packaging) whose changelog's newest entry is %s-N" % version,
              ["%s missing" % f for f in debian if f not in files] +
              ([] if m and m.group(1) == version else ["changelog: %s" % (m.group(1) if m else "no entry")]) +
              ([] if "Package: postgresql-PGVERSION-apikey" in read("debian/control.in")
               else ["control.in has no postgresql-PGVERSION-apikey package"]))


main()
sys.exit(1 if failures else 0)
