"""Run botocore's and s3transfer's own test suites with and without the plugin, and compare.

    python tests/compat/run.py [--workdir DIR] [SUITE ...]

SUITE is any of ``botocore-unit``, ``botocore-retry``, ``s3transfer-unit`` (default: all
three). The sdists of the botocore and s3transfer versions installed in this interpreter
are fetched with ``pip download --no-binary :all:`` (their tests ship only there), and
each suite runs twice from its sdist: plain, then with ``install_global()`` in effect
(``plugin_installed_globally.py``). The report lists both runs' counts and every test
whose outcome differs, which docs/explanation/differences-from-botocore.md explains
(``--strict``: exit 1 when there is any).

Needs the network for the download (or a ``--workdir`` that already holds the unpacked
sdists), pytest, and the test dependencies of the suites (botocore: jsonschema, behave);
it is not part of the default test run: a full botocore unit run takes several minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = {
    "botocore-unit": ("botocore", ["tests/unit"]),
    "botocore-retry": ("botocore", ["tests/functional/test_retry.py"]),
    "s3transfer-unit": ("s3transfer", ["tests/unit"]),
}


def unpacked_sdist(package: str, workdir: Path) -> Path:
    """The unpacked sdist of the installed version of ``package`` (downloaded once)."""
    version = __import__(package).__version__
    target = workdir / f"{package}-{version}"
    if target.is_dir():
        return target
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{package}=={version}",
            "-d",
            str(workdir),
        ],
        check=True,
    )
    with tarfile.open(workdir / f"{package}-{version}.tar.gz") as archive:
        try:  # a PyPI sdist we just asked pip for; "data" refuses links out of workdir
            archive.extractall(workdir, filter="data")
        except TypeError:  # Python without extraction filters
            archive.extractall(workdir)
    return target


def run_suite(
    root: Path, paths: list[str], junit: Path, with_plugin: bool, plugin_environ: dict[str, str]
) -> None:
    environ = {**os.environ, **(plugin_environ if with_plugin else {})}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "-o",
        "addopts=",
        *paths,
    ]
    if with_plugin:
        environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(HERE), environ.get("PYTHONPATH")])
        )
        command[3:3] = ["-p", "plugin_installed_globally"]
    subprocess.run(command, cwd=root, env=environ, check=False, stdout=subprocess.DEVNULL)


def outcomes(junit: Path) -> dict[str, str]:
    """``{test id: passed|failed|error|skipped}`` from a junit XML report."""
    results = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
        results[test_id] = outcome
    return results


def counts(results: dict[str, str]) -> str:
    tally: dict[str, int] = {}
    for outcome in results.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(tally.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="*", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--workdir", type=Path, default=Path("build/compat"))
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when any test's outcome differs"
    )
    parser.add_argument(
        "--botocore-retry-defaults",
        action="store_true",
        help="give the plugin botocore 1.44's own retry defaults (standard, 3 attempts): "
        "then nothing but the plugin's handlers differs",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    plugin_environ = {}
    if args.botocore_retry_defaults:
        plugin_environ = {
            "BOTOCORE_RESILIENCE_RETRY_MODE": "standard",
            "BOTOCORE_RESILIENCE_MAX_ATTEMPTS": "3",
        }
    differences = 0
    for suite in args.suites:
        package, paths = SUITES[suite]
        root = unpacked_sdist(package, args.workdir.resolve())
        variant = "-botocore-defaults" if args.botocore_retry_defaults else ""
        plain_xml = args.workdir.resolve() / f"{root.name}-{suite}-plain.xml"
        ours_xml = args.workdir.resolve() / f"{root.name}-{suite}-plugin{variant}.xml"
        if not plain_xml.exists():  # the plain run does not depend on the variant
            run_suite(root, paths, plain_xml, False, plugin_environ)
        run_suite(root, paths, ours_xml, True, plugin_environ)
        plain, ours = outcomes(plain_xml), outcomes(ours_xml)
        print(f"{suite} ({root.name}): plain: {counts(plain)}; with the plugin: {counts(ours)}")
        for test_id in sorted(set(plain) | set(ours)):
            before, after = plain.get(test_id, "absent"), ours.get(test_id, "absent")
            if before != after:
                differences += 1
                print(f"  {before} -> {after}: {test_id}")
    return 1 if differences and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
