"""botocore-resilience: retries, circuit breakers and metrics for every boto3 call.

One line, before creating clients::

    import boto3
    import botocore_resilience

    session = boto3.Session()
    botocore_resilience.install(session)
    s3 = session.client("s3")

Calls now retry in botocore's standard mode (plus the transient errors it leaves out),
fail fast with :class:`CircuitBreakerOpen` while their service is down, and are
counted in Prometheus. See the documentation for settings, metrics and the runbook.

The public API is what ``__all__`` lists, plus :mod:`botocore_resilience.testing` and
:mod:`botocore_resilience.plugin`; everything else is implementation. Besides the
functions, it holds the types a user meets: :class:`Settings` (``Installation.settings``),
:class:`Transition` (``record.transition`` on a circuit's log lines), :class:`Retry`
(``record.retry`` on a retry's log line) and :class:`Clock` (what ``clock=`` takes).
"""

from .breaker import CircuitBreaker, CircuitState, Transition
from .clock import Clock
from .config import Settings
from .errors import CircuitBreakerOpen, ConfigurationError
from .global_install import install_global, uninstall_global
from .install import Installation, install, uninstall
from .logs import Retry

__version__ = "0.1.0"

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerOpen",
    "CircuitState",
    "Clock",
    "ConfigurationError",
    "Installation",
    "Retry",
    "Settings",
    "Transition",
    "__version__",
    "install",
    "install_global",
    "uninstall",
    "uninstall_global",
]
