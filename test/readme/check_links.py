#!/usr/bin/python3
"""Every link between the README and the doc/ pages leads somewhere: a
relative link names a file of the repository (or a page another branch
adds, listed below), and its #anchor a heading of that page, as GitHub
makes anchors of headings.

Usage: check_links.py REPO
Prints one "ok"/"FAIL" line per page.
"""
import glob
import os
import re
import sys

def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation but - and _
    dropped, spaces as -."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(text):
    seen, out = {}, set()
    fence = False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"#{1,6} (.*)", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else "%s-%d" % (s, n))
    return out


def links(text):
    """(target, line number) of every inline link outside code."""
    fence = False
    for no, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for m in re.finditer(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
            yield m.group(1), no


def main(repo):
    pages = ["README.md"] + sorted(os.path.relpath(p, repo) for p in glob.glob(os.path.join(repo, "doc", "*.md")))
    heads = {p: anchors(open(os.path.join(repo, p), encoding="utf-8").read()) for p in pages}
    failed = 0
    for page in pages:
        text = open(os.path.join(repo, page), encoding="utf-8").read()
        bad, count = [], 0
        for target, no in links(text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            count += 1
            path, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(os.path.join(repo, dest)):
                bad.append("%d: %s (no file %s)" % (no, target, dest))
            elif anchor and dest.endswith(".md") and anchor not in heads.get(dest, set()):
                bad.append("%d: %s (no heading of %s makes #%s)" % (no, target, dest, anchor))
        if bad:
            failed += 1
            print("FAIL %s: links that lead nowhere: %s" % (page, "; ".join(bad)))
        else:
            print("ok   %s: its %d links lead to a file and a heading" % (page, count))
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1]) else 0)
