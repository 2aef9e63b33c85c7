"""A pause of a running run: the request, and the record of a run that stopped for it.

zquant's pause stops an execution at the next day boundary; its resume goes on from there.
Here the request is a pool named after the run, ``zquant_pause_run_<run id>``, set to 0
slots: the instance (`zquant pause-run`) and a webserver's GraphQL (``setConcurrencyLimit``,
`zquant --url URL pause-run`, `zquant api --url`) can both write one, where GraphQL cannot
add a tag to a run. No op uses such a pool, so it holds nothing in the queue; the UI lists
it among the pools, where an operator sees the request pending. A request of a run that
ended without a day boundary to stop at (no multi-day step, or its last day written) is
withdrawn by the next pause request (``Operations.pause_run``).

A multi-day step (assets/progress.py) looks for the request after each day it wrote (one
read of the pool names per day), and when there is one it records the run as paused in the
run's tags and ends the step: the run ends FAILURE in Dagster's terms, *paused* in
zquant's (``is_paused_run``). The record names the run, as a re-execution copies its
parent's tags. It also sets ``dagster/max_retries`` to 0 on the run, which is what Dagster's
run-retry daemon reads (through ``dagster/will_retry``, computed from it when the run
fails): a paused run waits for a resume, it is not retried automatically.
"""

from collections.abc import Iterable, Mapping

import dagster as dg

# Private module, but it is where Dagster names the tag its run-retry daemon reads.
from dagster._core.storage.tags import MAX_RETRIES_TAG

PAUSE_REQUEST_PREFIX = "zquant_pause_run_"
# The run that stopped for a pause request, in that run's tags (its value: the run's id).
TAG_PAUSED = "zquant/paused"
NOT_RETRIED = "0"


def pause_request_pool(run_id: str) -> str:
    return f"{PAUSE_REQUEST_PREFIX}{run_id}"


def request_pause(instance: dg.DagsterInstance, run_id: str) -> None:
    instance.event_log_storage.set_concurrency_slots(pause_request_pool(run_id), 0)


def requested_runs(pool_names: Iterable[str]) -> list[str]:
    """The ids of the runs with a pause request among ``pool_names``."""
    return [
        name.removeprefix(PAUSE_REQUEST_PREFIX)
        for name in pool_names
        if name.startswith(PAUSE_REQUEST_PREFIX)
    ]


def pause_requests(instance: dg.DagsterInstance) -> list[str]:
    return requested_runs(instance.event_log_storage.get_concurrency_keys())


def withdraw_pause(instance: dg.DagsterInstance, run_id: str) -> None:
    instance.event_log_storage.delete_concurrency_limit(pause_request_pool(run_id))


def pause_requested(instance: dg.DagsterInstance, run_id: str) -> bool:
    return pause_request_pool(run_id) in instance.event_log_storage.get_concurrency_keys()


def record_paused(instance: dg.DagsterInstance, run_id: str) -> None:
    """The run stops for its pause request: recorded paused, not to be retried, and the
    request (done with) removed."""
    instance.add_run_tags(run_id, {TAG_PAUSED: run_id, MAX_RETRIES_TAG: NOT_RETRIED})
    withdraw_pause(instance, run_id)


def is_paused_run(run_id: str, tags: Mapping[str, str]) -> bool:
    """Whether the run stopped for a pause (its own record, not one copied from a parent)."""
    return tags.get(TAG_PAUSED) == run_id
