"""What generated code raises when a decision it was compiled for does not hold.

A function with Python control flow on traced values (`if np.sum(x) > 0:`) is
compiled one path at a time: each decision the trace took is a guard, checked where
the user's code took it. A call whose values take another path stops at the first
guard that fails with `PathMiss`, and the compiled function runs (or compiles) the
path those values take. A module saved with `.save()` holds one path and raises
`PathMiss` for values that take another.
"""


class PathMiss(Exception):
    """The values of this call take a path the generated function was not compiled
    for (the message names the user's line whose decision went the other way)."""
