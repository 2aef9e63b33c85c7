"""Reading tasks.yaml into plain YAML data, before any validation: the file's size cap,
UTF-8, and a loader safe for a file anyone may have written (no aliases, no key given twice,
bounded nesting), with a YAML problem told as one line saying where.

Every failure is a ``CatalogFileError`` carrying that one line, which ``load_catalog``
reports as the catalog's ``CatalogError``. The screens file is read with the same loader.
"""

import os
from pathlib import Path

import yaml

from zquant_pipelines.tasks.action_params import shorten, show_value

# The shipped catalog is a few kB; a thousand tasks fit in well under 1 MiB. Bigger is a
# mistake or an attack, refused before it is read.
MAX_CATALOG_BYTES = 1024 * 1024
# A catalog nests about six levels (tasks, a task, config, a list); PyYAML composes
# recursively, so thousands of levels would crash it instead of failing to load.
MAX_NESTING = 50
# A YAML problem quotes the text it stumbled on (a tag, an anchor): this much of it.
SHOWN_PROBLEM_CHARS = 300


class CatalogFileError(Exception):
    """A catalog file that cannot be read as YAML; the message is the one problem."""


def parse_catalog_yaml(text: str) -> object:
    """``text`` read as a catalog file is read: YAML data, unvalidated."""
    return parse_yaml_document(text)[0]


def parse_yaml_document(text: str) -> tuple[object, yaml.Node | None]:
    """``text`` read as ``parse_catalog_yaml`` reads it, with the composed node tree too, for
    a caller whose checks name lines (the screens file's)."""
    loader = _CatalogLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.YAMLError as error:
        raise CatalogFileError(_yaml_problem(error)) from None
    finally:
        loader.dispose()


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


class _CatalogLoader(yaml.SafeLoader):
    """SafeLoader for a file anyone may have written: no aliases (an alias "bomb" of a few
    hundred bytes expands to gigabytes once validated or printed), nesting bounded (PyYAML
    composes recursively), a key given twice refused (YAML would keep the last), and a
    scalar that cannot be read (an impossible date, an over-long integer) an error at its
    line rather than a crash."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                f"found the alias *{shorten(event.anchor)}: aliases are not allowed in a task"
                " catalog, write the value out",
                event.start_mark,
            )
        if self._depth >= MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_NESTING} levels", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as error:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {show_value(node.value)}: {error}",
                node.start_mark,
            ) from None

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found the key {show_value(key)} twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    text = f"YAML syntax error at {where}{shorten(problem, SHOWN_PROBLEM_CHARS)}"
    text += f" ({context})" if context else ""
    if "alias" in text:
        text += "; quote values that start with '*', e.g. cron_expression: '*/5 * * * *'"
    return text
