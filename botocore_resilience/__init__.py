"""botocore-resilience: adaptive retries, circuit breakers and Prometheus metrics for every boto3 call."""

__version__ = "0.1.0"
