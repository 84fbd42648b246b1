"""Every docstring example in the package runs, against the package as installed.

(``pytest --doctest-modules botocore_resilience`` would import the source tree instead of the
wheel tox installed; this walks the imported package.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import botocore_resilience

MODULES = sorted(
    name
    for _finder, name, _is_package in pkgutil.walk_packages(
        botocore_resilience.__path__, prefix="botocore_resilience."
    )
    if not name.endswith("__main__")
)


# Modules of optional extras, and the import their examples need: skipped without it.
NEEDS = {"botocore_resilience.otel_metrics": "opentelemetry.sdk.metrics"}


def test_every_module_is_walked() -> None:
    assert "botocore_resilience.breaker" in MODULES
    assert "botocore_resilience.testing._local_s3" in MODULES


@pytest.mark.parametrize("name", ["botocore_resilience", *MODULES])
def test_docstring_examples(name: str) -> None:
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
