"""The AWS CLI plugin: every ``aws`` command gets retries, circuit breakers and metrics.

AWS CLI v1 loads the plugins named in the ``[plugins]`` section of the AWS config file
(``~/.aws/config``, or ``AWS_CONFIG_FILE``) and calls their ``awscli_initialize``::

    [plugins]
    resilience = botocore_resilience.awscli

AWS CLI v2 loads the same kind of plugin, provisionally (AWS calls its plugin support
provisional), from the directory named by ``cli_legacy_plugin_path`` in that section,
which must hold this package and its dependencies (``pip install --target DIR
botocore-resilience``)::

    [plugins]
    cli_legacy_plugin_path = /opt/aws-cli-plugins
    resilience = botocore_resilience.awscli

Settings come from the environment (``BOTOCORE_RESILIENCE_*``), as everywhere. The plugin
installs once the CLI has read its profile and region (its ``session-initialized``
event), so ``--profile`` and ``--region`` are honoured, and before the command creates a
client. As everywhere, the retry mode and attempts apply only where the user set none,
so a plain ``aws`` run moves from the CLI's legacy default to standard mode.

What the plugin logs at WARNING (a circuit opening) goes to stderr, one line each;
``aws --debug`` shows its INFO lines too (every retry). A call rejected by an open
circuit ends the command like any error the CLI reports: one line on stderr (the
``CircuitBreakerOpen`` message says which circuit and when the next probe may go) and
a non-zero exit status (255 for ``aws s3api``, 1 for the ``aws s3`` transfer commands).
A bad ``BOTOCORE_RESILIENCE_*`` value is one ERROR line on stderr, and the command runs
without the plugin: a typo in a setting must not stop every ``aws`` command.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from .install import install
from .logs import logger

__all__ = ["awscli_initialize"]

_UID = "botocore_resilience.awscli"


def awscli_initialize(event_hooks: Any) -> None:
    """The AWS CLI's plugin entry point: install on the CLI's session when it is ready.

    ``event_hooks`` is the event emitter of the CLI's botocore session.
    """
    event_hooks.register("session-initialized", _on_session_initialized, unique_id=_UID)


def _on_session_initialized(session: Any, parsed_args: Any = None, **kwargs: Any) -> None:
    _log_to_stderr(debug=bool(getattr(parsed_args, "debug", False)))
    try:
        install(session)
    except Exception as error:
        # ConfigurationError (a bad setting) or anything else: the command runs without us.
        logger.error("botocore_resilience not installed: %s", error)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so that a second session in one process does not add a second one."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def _log_to_stderr(*, debug: bool) -> None:
    # Without a handler anywhere, Python's last-resort handler would print our WARNINGs bare
    # and drop the INFO lines --debug asks for. Where the application (or another plugin)
    # configured logging, its handlers get our records as usual.
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        if logger.handlers or logging.getLogger().handlers:
            return
        logger.addHandler(_StderrHandler())
    if debug:
        logger.setLevel(logging.DEBUG)
