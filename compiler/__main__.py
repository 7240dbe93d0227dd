"""`python -m compiler show|graph|dump path.py:function ...`: see compiler/cli.py."""
import sys

from compiler.cli import main

if __name__ == "__main__":
    sys.exit(main())
