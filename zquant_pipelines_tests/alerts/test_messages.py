"""The alert texts: what they name, and no credential in them."""

from zquant_pipelines.alerts.messages import (
    check_failure_alert,
    first_line,
    freshness_alert,
    run_failure_alert,
)
from zquant_pipelines.alerts.notify import target_name


def test_run_failure_alert_names_task_run_step_first_error_line_and_link():
    alert = run_failure_alert(
        task="nightly",
        run_id="abc-123",
        job="task_nightly",
        failed_step="action_op",
        error="\n  could not reach postgresql://ops:hunter2@db:5432/market\nTraceback ...",
        ui_url="https://ops:uipass@dagster.example.com/",
    )
    text = f"{alert.title}\n{alert.body}"
    assert "nightly" in alert.title
    assert "Run: abc-123 (job task_nightly)" in text
    assert "Failed step: action_op" in text
    assert "Error: could not reach postgresql://ops:***@db:5432/market" in text
    assert "Link: https://ops:***@dagster.example.com/runs/abc-123" in text
    assert "hunter2" not in text and "uipass" not in text and "Traceback" not in text


def test_check_failure_alert_shows_its_metadata_redacted_and_cut():
    alert = check_failure_alert(
        task=None,
        run_id="r1",
        asset="daily",
        check="row_count_vs_listed",
        step="daily",
        metadata={"bad_days": {"2026-11-27": {"rows": 90, "listed": 10}}, "note": "x" * 400},
        ui_url="http://127.0.0.1:3000",
    )
    assert "Task: (no task)" in alert.body
    assert "Partitions" not in alert.body
    assert '"2026-11-27": {"listed": 10, "rows": 90}' in alert.body
    assert "x" * 300 + "..." in alert.body and "x" * 301 not in alert.body


def test_a_run_without_a_task_is_named_by_its_job_and_partitions():
    alert = run_failure_alert(
        task=None,
        run_id="r2",
        job="market_data_job",
        failed_step=None,
        error=None,
        ui_url="http://127.0.0.1:3000",
        partitions="2026-11-02...2026-11-27",
    )
    assert alert.title == "zquant: job market_data_job failed"
    assert "Partitions: 2026-11-02...2026-11-27" in alert.body
    assert "Failed step: (none: the run failed outside its steps)" in alert.body
    assert "Error: (no error message)" in alert.body


def test_first_line_skips_blank_lines_and_has_a_placeholder():
    assert first_line("\n\n  boom\nmore") == "boom"
    assert first_line(None) == "(no error message)"


def test_target_names_hide_passwords_and_tokens():
    assert target_name(1, "json://ops:hunter2@127.0.0.1:9/") == "#1 json://ops:***@127.0.0.1:9/"
    slack = target_name(2, "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ")
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in slack and slack.startswith("#2 slack://")
    assert target_name(3, "nosuch://secret-token@x") == "#3 nosuch://... (not a URL Apprise reads)"
    assert "secret" not in target_name(4, "secret-without-scheme")


def test_freshness_alert_without_a_complete_day_says_so_and_hides_the_ui_password():
    alert = freshness_alert(
        dataset="factor_daily",
        expected_day="2026-11-27",
        deadline="2026-11-27T19:00:00+08:00",
        latest_complete_day=None,
        missing_days=["2026-11-26", "2026-11-27"],
        ui_url="https://ops:uipass@dagster.example.com/",
    )
    assert alert.title == "zquant: factor_daily for 2026-11-27 missed its deadline"
    assert alert.body.splitlines() == [
        "Dataset: factor_daily",
        "Day expected: 2026-11-27 (open day, due by 2026-11-27T19:00:00+08:00)",
        "Latest complete day: (none of the recent open days)",
        "Missing open days: 2026-11-26, 2026-11-27",
        "Link: https://ops:***@dagster.example.com/assets/factor_daily?view=checks",
    ]
