"""NumPy functions on traced values, one module per family. Each module registers its
handlers with `compiler.numpy_dispatch.implements`; importing this package imports
them all. A handler turns NumPy's flexible spelling (axis=None / int / tuple,
keyword defaults) into primitives of compiler/primitives/."""
from compiler.numpy_functions import creation, elementwise, linalg, reductions, scipy_functions, shapes  # noqa: F401
from compiler.numpy_functions import fft, selection  # noqa: F401
