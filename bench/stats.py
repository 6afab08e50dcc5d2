"""Statistics shared by the bench scripts' summaries (imported by the
Python their shell scripts run: `sys.path.insert(0, "bench")`): the mean
of a measure over paired rounds with its 95 % interval (Student's t),
and a verdict on a target from that interval."""

import math
import statistics


def t975(df):
    """The 97.5 % quantile of Student's t with df degrees of freedom: its
    CDF (Simpson's rule over the density) solved by bisection."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def pdf(x):
        return c * (1 + x * x / df) ** (-(df + 1) / 2)

    def area(x, n=2000):  # from 0 to x
        h = x / n
        s = pdf(0) + pdf(x) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, n))
        return s * h / 3

    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if area(mid) < 0.475 else (lo, mid)
    return (lo + hi) / 2


def interval(xs):
    """Mean and half-width of its 95 % interval (t, n - 1 degrees); the
    half-width is nan with fewer than two values."""
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, t975(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))


def geometric_interval(ratios):
    """The geometric mean of positive ratios and its 95 % interval (the t
    interval of their logarithms, mapped back): (mean, low, high). One
    run's p99 can be 10x the others' when the machine stalls, and the
    arithmetic mean of ratios follows such a run (and is not symmetric:
    the mean of a/b is not 1 / the mean of b/a); on a log scale a/b and
    b/a mirror each other and one outlier weighs what its factor says."""
    m, h = interval([math.log(x) for x in ratios if x > 0])
    return math.exp(m), math.exp(m - h), math.exp(m + h)


def verdict(lo, hi, at_most=None, at_least=None):
    """Whether [lo, hi] meets a bound: all of it ('met'), none of it
    ('missed'), or part (or a bound is nan: too few rounds)."""
    if math.isnan(lo) or math.isnan(hi):
        return "not decided (more rounds)"
    if at_most is not None:
        return "met" if hi <= at_most else "missed" if lo > at_most else "not decided (more rounds)"
    return "met" if lo >= at_least else "missed" if hi < at_least else "not decided (more rounds)"
