"""Reading tasks.yaml into plain YAML data, before any validation: the file's size cap,
UTF-8, and the loader for a file anyone may have written (``safe_yaml``: no aliases, no key
given twice, bounded nesting), with a YAML problem told as one line saying where.

Every failure is a ``CatalogFileError`` carrying that one line, which ``load_catalog``
reports as the catalog's ``CatalogError``.
"""

import os
from pathlib import Path

from zquant_pipelines.safe_yaml import YamlFileError, parse_yaml_document

# The shipped catalog is a few kB; a thousand tasks fit in well under 1 MiB. Bigger is a
# mistake or an attack, refused before it is read.
MAX_CATALOG_BYTES = 1024 * 1024


class CatalogFileError(Exception):
    """A catalog file that cannot be read as YAML; the message is the one problem."""


def parse_catalog_yaml(text: str) -> object:
    """``text`` read as a catalog file is read: YAML data, unvalidated."""
    try:
        return parse_yaml_document(text, "task catalog")[0]
    except YamlFileError as error:
        problem = str(error)
        if "alias" in problem:
            problem += "; quote values that start with '*', e.g. cron_expression: '*/5 * * * *'"
        raise CatalogFileError(problem) from None


def read_catalog_text(path: str | Path, source: str) -> str:
    """The file's text; a file over ``MAX_CATALOG_BYTES`` is refused before it is read."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size <= MAX_CATALOG_BYTES:
                # A file still growing is read no further than the cap either.
                content = file.read(MAX_CATALOG_BYTES + 1)
                size = max(size, len(content))
    except OSError as error:
        raise CatalogFileError(f"cannot read {source}: {error.strerror or error}") from None
    if size > MAX_CATALOG_BYTES:
        raise CatalogFileError(
            f"{source} is {size:,} bytes, over the {MAX_CATALOG_BYTES:,}-byte limit of a"
            " task catalog"
        )
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CatalogFileError(
            f"{source} is not UTF-8 text: byte {content[error.start]:#04x} at offset"
            f" {error.start:,}"
        ) from None
