"""Example script for the run_script action: talks to Dagster through dagster-pipes.

Its log lines appear in the run's logs and its custom message becomes the op's metadata.
"""

import argparse
import platform

from dagster_pipes import open_dagster_pipes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--greeting", default="hello")
    args = parser.parse_args()
    with open_dagster_pipes() as pipes:
        pipes.log.info(
            f"{args.greeting} from {platform.node()} (python {platform.python_version()})"
        )
        pipes.report_custom_message(
            {"greeting": args.greeting, "python": platform.python_version()}
        )


if __name__ == "__main__":
    main()
