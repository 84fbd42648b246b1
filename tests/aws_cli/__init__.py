"""The real ``aws`` (AWS CLI v1) with the plugin, against the local S3 (tox env ``awscli``)."""
