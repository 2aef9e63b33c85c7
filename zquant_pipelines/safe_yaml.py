"""Reading a YAML file anyone may have written (tasks.yaml, screens.yaml) into plain data,
before any validation: no aliases, no key given twice, bounded nesting, a scalar that cannot
be read an error at its line; a problem told as one line saying where. And how an error
message quotes a value: shortened, as its author wrote it.
"""

import datetime as dt

import yaml

# A file nests a few levels (tasks, a task, config, a list); PyYAML composes recursively, so
# thousands of levels would crash it instead of failing to load.
MAX_NESTING = 50
# A YAML problem quotes the text it stumbled on (a tag, an anchor): this much of it.
SHOWN_PROBLEM_CHARS = 300
# Errors quote a value up to this many characters (then say how long it is).
SHOWN_VALUE_CHARS = 80


class YamlFileError(Exception):
    """A file that cannot be read as YAML; the message is the one problem."""


def parse_yaml_document(text: str, kind: str) -> tuple[object, yaml.Node | None]:
    """``text`` read safely (``kind`` names the file in messages: "task catalog"): its
    data and its composed node tree, for a caller whose checks name lines."""
    loader = SafeFileLoader(text, kind)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.YAMLError as error:
        raise YamlFileError(yaml_problem(error)) from None
    finally:
        loader.dispose()


class SafeFileLoader(yaml.SafeLoader):
    """SafeLoader for a file anyone may have written: no aliases (an alias "bomb" of a few
    hundred bytes expands to gigabytes once validated or printed), nesting bounded (PyYAML
    composes recursively), a key given twice refused (YAML would keep the last), and a
    scalar that cannot be read (an impossible date, an over-long integer) an error at its
    line rather than a crash."""

    def __init__(self, stream, kind: str):
        super().__init__(stream)
        self._depth = 0
        self._kind = kind

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                f"found the alias *{shorten(event.anchor)}: aliases are not allowed in a"
                f" {self._kind}, write the value out",
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


def yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    text = f"YAML syntax error at {where}{shorten(problem, SHOWN_PROBLEM_CHARS)}"
    return text + (f" ({context})" if context else "")


def show_value(value: object) -> str:
    """A value as the file's author wrote it (YAML's unquoted dates read 2024-01-02),
    shortened."""
    return shorten(value.isoformat() if isinstance(value, dt.date) else repr(value))


def shorten(text: str, limit: int = SHOWN_VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: a long or hostile value
    must not flood an error message."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"
