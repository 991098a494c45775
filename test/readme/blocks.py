#!/usr/bin/python3
"""The README's tested text: what follows a line <!-- tested: NAME -->.

Usage: blocks.py README NAME
A fenced block (```lang ... ```) right after the marker is printed without
its fences; otherwise the text up to <!-- /tested --> is printed.  Exits 1
when the marker is missing, so a renamed or deleted block fails its test
instead of testing nothing.
"""
import sys


def block(text, name):
    lines = text.split("\n")
    marker = "<!-- tested: %s -->" % name
    if lines.count(marker) != 1:
        raise SystemExit("%s: %d markers '%s'" % (sys.argv[1], lines.count(marker), marker))
    i = lines.index(marker) + 1
    if lines[i].startswith("```"):
        end = lines.index("```", i + 1)
        return "\n".join(lines[i + 1:end]) + "\n"
    end = lines.index("<!-- /tested -->", i)
    return "\n".join(lines[i:end]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(block(open(sys.argv[1], encoding="utf-8").read(), sys.argv[2]))
