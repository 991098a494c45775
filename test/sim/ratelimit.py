#!/usr/bin/python3
"""Rate-limit algorithms compared: what each admits under the same traffic.
The evidence behind apikey's choice (README, "Rate limits"); not a test.

Limit: N requests per W.  For each algorithm and traffic pattern:
  worst  = the most admissions in any window of length W (the guarantee a
           user reads into "N per W"; a sliding log is the exact reference)
  mean   = admissions per W on average over the run (how much of the
           budget a client that wants more than N actually gets)

Usage: python3 test/sim/ratelimit.py   (a few seconds; deterministic)
"""
import bisect, math, random

N, W = 100, 60.0


class FixedWindow:
    def __init__(s): s.win, s.n = None, 0
    def take(s, t):
        w = math.floor(t / W)
        if w != s.win: s.win, s.n = w, 0
        if s.n + 1 > N: return False
        s.n += 1; return True


class SlidingCounter:          # Cloudflare's estimate: prev * (1 - f) + cur
    def __init__(s): s.win, s.cur, s.prev = None, 0, 0
    def take(s, t):
        w = math.floor(t / W)
        if s.win is None: s.win = w
        if w != s.win:
            s.prev = s.cur if w == s.win + 1 else 0
            s.cur, s.win = 0, w
        f = t / W - w
        if s.prev * (1 - f) + s.cur + 1 > N: return False
        s.cur += 1; return True


class GCRA:                    # token bucket: burst N, one token per W/N
    def __init__(s): s.tat = 0.0
    def take(s, t):
        T, tau = W / N, (N - 1) * W / N
        tat = max(s.tat, t)
        if tat - t > tau: return False
        s.tat = tat + T; return True


class SubWindows:              # K sub-windows + the current one, all counted (apikey)
    K = 31
    def __init__(s): s.counts, s.newest = {}, None
    def take(s, t):
        g = W / s.K
        i = math.floor(t / g)
        if s.newest is None or i > s.newest: s.newest = i
        i = s.newest
        used = sum(s.counts.get(j, 0) for j in range(i - s.K, i + 1))
        if used + 1 > N: return False
        s.counts[i] = s.counts.get(i, 0) + 1
        for j in [j for j in s.counts if j < i - s.K]: del s.counts[j]
        return True


class SlidingLog:              # exact, but memory grows with N
    def __init__(s): s.log = []
    def take(s, t):
        while s.log and s.log[0] <= t - W: s.log.pop(0)
        if len(s.log) + 1 > N: return False
        s.log.append(t); return True


def worst(admitted):
    best = 0
    for i, t in enumerate(admitted):
        j = bisect.bisect_left(admitted, t + W)   # window [t, t + W)
        best = max(best, j - i)
    return best


def run(alg, times):
    a = alg()
    return [t for t in times if a.take(t)]


random.seed(1)
T = 50 * W
patterns = {
    # a client that asks every 10 ms: takes whatever is let through
    "greedy, every 10 ms": [i * 0.01 for i in range(int(T / 0.01))],
    # quiet, then a burst of N at the end of one window and N at the start
    # of the next, repeated
    "bursts at window edges": sorted(k * 3 * W + W - 1 + d * 0.001 for k in range(16) for d in range(N))
                              + sorted(k * 3 * W + W + d * 0.001 for k in range(16) for d in range(N)),
    # Poisson arrivals at 3 N per W
    "Poisson, 3x the limit": sorted(random.uniform(0, T) for _ in range(int(3 * N * T / W))),
    # Poisson at 0.9 N per W: under the limit
    "Poisson, 0.9x the limit": sorted(random.uniform(0, T) for _ in range(int(0.9 * N * T / W))),
}
algs = [("fixed window", FixedWindow), ("sliding-window counter", SlidingCounter),
        ("GCRA / token bucket", GCRA), ("31 sub-windows, all counted", SubWindows),
        ("sliding log (exact)", SlidingLog)]
print("limit N = %d per W = %gs; worst = most admitted in any window of length W;"
      " mean = admitted per W over %d W" % (N, W, T / W))
for pname, times in patterns.items():
    times = sorted(times)
    print("\n%s (%d requests)" % (pname, len(times)))
    print("  %-30s %6s %8s" % ("algorithm", "worst", "mean"))
    for aname, alg in algs:
        adm = run(alg, times)
        print("  %-30s %6d %8.1f" % (aname, worst(adm), len(adm) / (T / W)))
