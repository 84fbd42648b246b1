"""Name the S3 operation behind a path-style HTTP request (best effort).

The local server counts requests per operation and matches faults by
operation, so it needs ``GET /bucket/key`` -> ``GetObject``. Common operations
are named exactly; rarer sub-resources get a name built from the verb and the
sub-resource (``GET /bucket?versioning`` -> ``GetBucketVersioning``), which is
right for most of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import parse_qsl

__all__ = ["S3Request", "describe"]

_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}

# Query keys that are parameters of an operation, not sub-resources naming one.
_PARAMETERS = frozenset(
    {
        "prefix", "delimiter", "max-keys", "marker", "encoding-type", "continuation-token",
        "fetch-owner", "start-after", "versionId", "partNumber", "key-marker",
        "version-id-marker", "upload-id-marker", "max-uploads", "max-parts",
        "part-number-marker", "id", "optional-object-attributes",
    }
)  # fmt: skip

# Exact names where verb + sub-resource would be wrong.
_SPECIAL = {
    ("GET", "bucket", "location"): "GetBucketLocation",
    ("GET", "bucket", "versions"): "ListObjectVersions",
    ("GET", "bucket", "uploads"): "ListMultipartUploads",
    ("GET", "bucket", "list-type"): "ListObjectsV2",
    ("POST", "bucket", "delete"): "DeleteObjects",
    ("GET", "bucket", "lifecycle"): "GetBucketLifecycleConfiguration",
    ("PUT", "bucket", "lifecycle"): "PutBucketLifecycleConfiguration",
    ("GET", "bucket", "notification"): "GetBucketNotificationConfiguration",
    ("PUT", "bucket", "notification"): "PutBucketNotificationConfiguration",
    ("GET", "bucket", "object-lock"): "GetObjectLockConfiguration",
    ("PUT", "bucket", "object-lock"): "PutObjectLockConfiguration",
    ("GET", "bucket", "publicAccessBlock"): "GetPublicAccessBlock",
    ("PUT", "bucket", "publicAccessBlock"): "PutPublicAccessBlock",
    ("DELETE", "bucket", "publicAccessBlock"): "DeletePublicAccessBlock",
    ("POST", "object", "uploads"): "CreateMultipartUpload",
    ("POST", "object", "uploadId"): "CompleteMultipartUpload",
    ("PUT", "object", "uploadId"): "UploadPart",
    ("GET", "object", "uploadId"): "ListParts",
    ("DELETE", "object", "uploadId"): "AbortMultipartUpload",
    ("POST", "object", "restore"): "RestoreObject",
    ("POST", "object", "select"): "SelectObjectContent",
}

_PLAIN = {
    ("GET", "service"): "ListBuckets",
    ("PUT", "bucket"): "CreateBucket",
    ("DELETE", "bucket"): "DeleteBucket",
    ("HEAD", "bucket"): "HeadBucket",
    ("GET", "bucket"): "ListObjects",
    ("GET", "object"): "GetObject",
    ("PUT", "object"): "PutObject",
    ("HEAD", "object"): "HeadObject",
    ("DELETE", "object"): "DeleteObject",
}


@dataclass(frozen=True)
class S3Request:
    """What a path-style S3 request is about."""

    method: str
    bucket: Optional[str]
    key: Optional[str]
    operation: str


def describe(method: str, path: str, query: str, *, copy_source: bool = False) -> S3Request:
    """Describe a path-style S3 request; ``path`` is already percent-decoded.

    >>> describe("GET", "/my-bucket/a/b.txt", "")
    S3Request(method='GET', bucket='my-bucket', key='a/b.txt', operation='GetObject')
    >>> describe("GET", "/my-bucket", "list-type=2&prefix=a").operation
    'ListObjectsV2'
    >>> describe("PUT", "/my-bucket/k", "partNumber=1&uploadId=x", copy_source=True).operation
    'UploadPartCopy'
    """
    method = method.upper()
    bucket, _, key = path.lstrip("/").partition("/")
    scope = "object" if key else "bucket" if bucket else "service"
    keys = [k for k, _ in parse_qsl(query, keep_blank_values=True)]
    subresource = next((k for k in keys if k not in _PARAMETERS), None)

    if subresource is None:
        operation = _PLAIN.get((method, scope), f"{method} {scope}")
        if operation == "PutObject" and copy_source:
            operation = "CopyObject"
    elif (method, scope, subresource) in _SPECIAL:
        operation = _SPECIAL[(method, scope, subresource)]
        if operation == "UploadPart" and copy_source:
            operation = "UploadPartCopy"
    else:
        noun = "Bucket" if scope == "bucket" else "Object"
        operation = f"{_VERBS.get(method, method)}{noun}{_camel(subresource)}"
    return S3Request(method, bucket or None, key or None, operation)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("-"))
