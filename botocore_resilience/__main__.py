"""``python -m botocore_resilience``: see :mod:`botocore_resilience.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
