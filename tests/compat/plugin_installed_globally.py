"""A pytest plugin for upstream test suites: ``install_global()`` before any test runs.

Loaded by ``tests/compat/run.py`` with ``-p plugin_installed_globally``, so that every
client botocore's, boto3's or s3transfer's own tests create carries the plugin exactly as
an application's would: settings from the environment (``BOTOCORE_RESILIENCE_*``, all at
their defaults unless ``run.py --botocore-retry-defaults`` sets the two retry settings to
botocore 1.44's own), metrics on a private registry.
"""

from __future__ import annotations

from typing import Any

_installation: Any = None


def pytest_configure(config: Any) -> None:
    global _installation
    from prometheus_client import CollectorRegistry

    import botocore_resilience

    _installation = botocore_resilience.install_global(registry=CollectorRegistry())


def pytest_runtest_setup(item: Any) -> None:
    # Each upstream test stands for a fresh application: circuits start closed. Without this
    # the breaker, doing its job, opens on one test's deliberate failures (five 500s to
    # codecommit/us-west-2) and rejects the calls of the tests after it.
    for breaker in _installation.breakers().values():
        breaker.reset()


def pytest_report_header(config: Any) -> str:
    import botocore_resilience

    return f"botocore-resilience {botocore_resilience.__version__}: install_global() in effect"
