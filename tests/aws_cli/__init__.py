"""The real ``aws`` (AWS CLI v1) with the plugin, against the local S3 (tox env ``awscli``).

Not named ``awscli``: pytest puts ``tests/`` on ``sys.path``, and a test package of that
name would shadow the real one.
"""
