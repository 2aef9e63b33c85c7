"""`python -m zquant_pipelines.cli`: the `zquant` console script without its installed
wrapper (how the scale-out tests and bench start Celery workers)."""

import sys

from zquant_pipelines.cli.main import main

sys.exit(main())
