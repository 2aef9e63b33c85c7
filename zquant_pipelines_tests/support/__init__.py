"""What the tests and the benchmarks share: the test harness, not tests.

The tests mirror the source tree (zquant_pipelines/x/y.py is tested in
zquant_pipelines_tests/x/test_y.py); this package is the one exception. A helper lives here
when bench/ imports it, when tests in more than one folder import it, or when a conftest
imports it: conftest files and bench import from here, never from a conftest or a test
module. Fixtures stay in conftest.py files; a helper of one folder's tests stays in that
folder (tasks/support.py, tasks/catalog_location.py).

- ``services``: PostgreSQL admin URL and throwaway databases, Redis URL, skip-or-fail rule.
- ``tushare_wire_server``: a local HTTP server speaking tushare's wire protocol, with faults.
- ``wire_clients``: the TushareClient and the assets' resources pointed at a wire server.
- ``scale_out``: Celery workers, a PostgreSQL instance and the wire server on one machine.
- ``synthetic_runs`` and ``naive_stats``: a known mix of task runs, and stats counted the
  plain way as the oracle.
- ``synthetic_market`` and ``factor_oracle``: market panels at any size, and the factors
  computed with a loop per stock as the oracle.
- ``operations_environment``: a DAGSTER_HOME, catalog and code location for the CLI tests.
- ``catalog_files``: tasks.yaml text from task dicts, without anchors or aliases.
- ``waiting``: polling a condition with a deadline.
- ``webserver_probes``: a webserver's code location loaded, secrets shown by name, CSRF probes.
- ``warehouse_rows``: a table's rows as plain dicts, a ``daily`` frame of made-up bars (two
  resources/ test modules share them: here, so no test module imports another).
- ``module_order``: the slowest test modules first, for `make test`'s two xdist workers.
"""
