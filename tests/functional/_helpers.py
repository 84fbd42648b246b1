"""Small helpers shared by the functional tests (fixtures live in ``tests/conftest.py``)."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError


def metadata_of(call: Callable[[], Any]) -> dict[str, Any]:
    """``ResponseMetadata`` of a call that ends with a response, whether it raised or not."""
    try:
        response = call()
    except ClientError as error:
        return dict(error.response["ResponseMetadata"])
    body = response.get("Body")
    if body is not None:
        body.read()
    return dict(response["ResponseMetadata"])


def fail_calls(client: Any, bucket: str, n: int) -> None:
    """``n`` ListObjectsV2 calls that each end in ``SlowDown`` (inject it sticky first)."""
    for _ in range(n):
        with pytest.raises(ClientError) as raised:
            client.list_objects_v2(Bucket=bucket)
        assert raised.value.response["Error"]["Code"] == "SlowDown"
