"""botocore-resilience: adaptive retries, circuit breakers and metrics for every boto3 call.

One line, before creating clients::

    import boto3
    import botocore_resilience

    session = boto3.Session()
    botocore_resilience.install(session)
    s3 = session.client("s3")

Calls now retry in botocore's adaptive mode (plus the transient errors it leaves out),
fail fast with :class:`CircuitBreakerOpen` while their service is down, and are
counted in Prometheus. See the documentation for settings, metrics and the runbook.
"""

from .breaker import CircuitBreaker, CircuitState
from .errors import CircuitBreakerOpen, ConfigurationError
from .global_install import install_global, uninstall_global
from .install import Installation, install, uninstall

__version__ = "0.1.0"

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerOpen",
    "CircuitState",
    "ConfigurationError",
    "Installation",
    "__version__",
    "install",
    "install_global",
    "uninstall",
    "uninstall_global",
]
