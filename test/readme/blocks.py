#!/usr/bin/python3
"""The documentation's tested text: what follows a line <!-- tested: NAME -->.

Usage: blocks.py README NAME
The marker is looked for in README and in every doc/*.md page beside it
(manual() joins them), and must occur exactly once across them all, so a
block moved between pages keeps its test.  A fenced block (```lang ... ```)
right after the marker is printed without its fences; otherwise the text up
to <!-- /tested --> is printed.  Exits 1 when the marker is missing, so a
renamed or deleted block fails its test instead of testing nothing.
"""
import glob
import os
import sys


def manual(readme):
    """README and the doc/ pages beside it, in a stable order, as one text."""
    paths = [readme] + sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(readme)), "doc", "*.md")))
    return "\n".join(open(p, encoding="utf-8").read() for p in paths)


def block(text, name):
    lines = text.split("\n")
    marker = "<!-- tested: %s -->" % name
    if lines.count(marker) != 1:
        raise SystemExit("%d markers '%s' in the README and doc/" % (lines.count(marker), marker))
    i = lines.index(marker) + 1
    if lines[i].startswith("```"):
        end = lines.index("```", i + 1)
        return "\n".join(lines[i + 1:end]) + "\n"
    end = lines.index("<!-- /tested -->", i)
    return "\n".join(lines[i:end]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(block(manual(sys.argv[1]), sys.argv[2]))
