"""The text of every alert: plain functions from what failed to a title and a body.

A run or check failure's body names the task, the run, the failed step, the first line of
the error and a link to the run in the UI; a missed freshness deadline's names the dataset,
the day expected, its deadline, the latest complete day, the open days missing and a link
to the dataset's checks. Every text passes through ``redact_credentials`` so a URL with a
password inside an error never leaves the machine. Environment values never enter a message
(the UI's base URL is passed in, and it is redacted too).
"""

import dataclasses
import json
from collections.abc import Mapping

from zquant_pipelines.redaction import redact_credentials

# What a message shows for a run without the zquant/task tag (an asset job run by hand).
NO_TASK = "(no task)"
# Metadata values of a failed check longer than this are cut (a JSON of bad days can be long).
MAX_METADATA_CHARS = 300


@dataclasses.dataclass(frozen=True)
class Alert:
    title: str
    body: str


def run_link(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def first_line(text: str | None) -> str:
    """The first non-blank line of an error, or a placeholder when there is none."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return "(no error message)"


def _alert(title: str, lines: list[str]) -> Alert:
    return Alert(title=redact_credentials(title), body=redact_credentials("\n".join(lines)))


def run_failure_alert(
    *,
    task: str | None,
    run_id: str,
    job: str,
    failed_step: str | None,
    error: str | None,
    ui_url: str,
    partitions: str | None = None,
) -> Alert:
    return _alert(
        f"zquant: task {task} failed" if task else f"zquant: job {job} failed",
        [
            f"Task: {task or NO_TASK}",
            f"Run: {run_id} (job {job})",
            *([f"Partitions: {partitions}"] if partitions else []),
            f"Failed step: {failed_step or '(none: the run failed outside its steps)'}",
            f"Error: {first_line(error)}",
            f"Link: {run_link(ui_url, run_id)}",
        ],
    )


def check_failure_alert(
    *,
    task: str | None,
    run_id: str,
    asset: str,
    check: str,
    step: str | None,
    metadata: Mapping[str, object],
    ui_url: str,
    partitions: str | None = None,
) -> Alert:
    details = [f"  {key}: {_shown(value)}" for key, value in metadata.items()]
    return _alert(
        f"zquant: blocking check {asset} {check} failed",
        [
            f"Task: {task or NO_TASK}",
            f"Run: {run_id}",
            *([f"Partitions: {partitions}"] if partitions else []),
            f"Failed step: {step or '(unknown)'}",
            f"Error: blocking check {check} of {asset} failed",
            f"Link: {run_link(ui_url, run_id)}",
            *(["Check metadata:", *details] if details else []),
        ],
    )


def asset_checks_link(ui_url: str, asset: str) -> str:
    return f"{ui_url.rstrip('/')}/assets/{asset}?view=checks"


def freshness_alert(
    *,
    dataset: str,
    expected_day: str,
    deadline: str,
    latest_complete_day: str | None,
    missing_days: list[str],
    ui_url: str,
) -> Alert:
    return _alert(
        f"zquant: {dataset} for {expected_day} missed its deadline",
        [
            f"Dataset: {dataset}",
            f"Day expected: {expected_day} (open day, due by {deadline})",
            f"Latest complete day: {latest_complete_day or '(none of the recent open days)'}",
            f"Missing open days: {', '.join(missing_days) or '(none)'}",
            f"Link: {asset_checks_link(ui_url, dataset)}",
        ],
    )


def test_alert(ui_url: str) -> Alert:
    return _alert(
        "zquant: test notification",
        ["This is a test notification from `zquant alerts test`.", f"UI: {ui_url}"],
    )


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= MAX_METADATA_CHARS else text[:MAX_METADATA_CHARS] + "..."
