"""Suite-wide pytest settings: the versions under test, and no reaching outside the machine.

Fixtures live next to the tests that use them (``tests/functional/conftest.py``) and in
``botocore_resilience.testing``; this file holds only what every test run needs.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

import pytest

# A client with no credentials must fail fast with NoCredentialsError, not probe the EC2 instance
# metadata service (169.254.169.254) with timeouts: tox sets this too, this covers a bare `pytest`.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

_REPORTED = (
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
    "moto",
    "prometheus-client",
    "wrapt",
    "pytest",
)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the dependency versions, so a failure in any tox env says what it ran against."""
    import botocore_resilience

    origin = os.path.dirname(botocore_resilience.__file__)
    return [
        f"botocore-resilience {botocore_resilience.__version__} from {origin}",
        f"python {platform.python_version()}: "
        + ", ".join(f"{name} {_version(name)}" for name in _REPORTED),
    ]
