"""Screen conditions: text -> a checked expression tree -> a vectorised mask over a frame.

A condition is a small language of its own, never Python: comparisons (``= != <> < <= >
>=``) between a column and a constant or another column, ``[not] between A and B``, ``[not]
in (A, B, ...)``, ``[not] like 'pattern'`` (``%`` any text, ``_`` one character), ``is
[not] null``, combined with ``and``, ``or``, ``not`` and parentheses (``not`` binds
tightest, then ``and``, then ``or``; keywords in any case). ``tokenize`` and ``Parser``
(recursive descent) build the tree; ``check`` resolves every column against the tables'
columns and their kinds (number, text, date) and refuses what cannot be compared;
``evaluate`` computes the tree on a frame with pandas' vectorised operations.

NULL follows SQL: a comparison with a missing value is unknown, ``not`` unknown stays
unknown, and a stock passes only where the whole condition is true. So a stock with no
``pe`` (a loss maker) passes neither ``pe < 20`` nor ``not pe < 20``.
"""

import datetime as dt
import difflib
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from zquant_pipelines.resources.warehouse_schema import FACTOR_TABLE

NUMBER, TEXT, DATE = "number", "text", "date"
KEYWORDS = frozenset({"and", "or", "not", "between", "in", "like", "is", "null"})
COMPARISONS = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# A condition is one line of a YAML file; a longer one is a mistake (or an attack on the
# recursive parser), refused before it is read.
MAX_CONDITION_CHARS = 2000
# Each level of not or parentheses is a few frames of the parser, the checker and the
# evaluator: far fewer than Python's recursion limit, far more than a screen needs.
MAX_NESTING = 50

TOKEN_PATTERN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<text>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
    | (?P<operator><=|>=|!=|<>|==|=|<|>)
    | (?P<punctuation>[(),-])
    """,
    re.VERBOSE,
)


class ConditionError(ValueError):
    """A condition that cannot be read or checked; ``column`` names the column at fault."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: str  # number, text, name, keyword, operator, punctuation, end
    value: str
    position: int  # 1-based character position, for errors


# --- the tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str  # as written: total_mv or daily_basic.total_mv
    qualified: str = ""  # table.column once checked
    kind: str = ""


@dataclass(frozen=True)
class Constant:
    value: object  # float, str, or pandas Timestamp once compared with a date column
    kind: str


@dataclass(frozen=True)
class Compare:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Between:
    operand: object
    low: object
    high: object
    negated: bool = False


@dataclass(frozen=True)
class InList:
    operand: object
    values: tuple
    negated: bool = False


@dataclass(frozen=True)
class Like:
    operand: object
    pattern: Constant
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    operand: object
    negated: bool = False


@dataclass(frozen=True)
class Not:
    part: object


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    parts: tuple


# --- reading -----------------------------------------------------------------------------


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(f"is {len(text):,} characters long, over {MAX_CONDITION_CHARS:,}")
    tokens, position = [], 0
    while position < len(text):
        match = TOKEN_PATTERN.match(text, position)
        if match is None:
            problem = (
                "a quoted text is not closed"
                if text[position] in "'\""
                else f"unexpected character {text[position]!r}"
            )
            raise ConditionError(f"{problem} at position {position + 1}")
        kind, value = match.lastgroup, match.group()
        if kind == "text":
            quote = value[0]
            value = value[1:-1].replace(quote * 2, quote)
        elif kind == "name" and value.lower() in KEYWORDS:
            kind, value = "keyword", value.lower()
        if kind != "space":
            tokens.append(Token(kind, value, position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class Parser:
    """Recursive descent over the tokens; each method reads one rule of the grammar:

    condition := disjunct ("or" disjunct)*
    disjunct  := conjunct ("and" conjunct)*
    conjunct  := "not" conjunct | "(" condition ")" | predicate
    predicate := operand ( COMPARISON operand | ["not"] "between" operand "and" operand
                 | ["not"] "in" "(" operand ("," operand)* ")" | ["not"] "like" TEXT
                 | "is" ["not"] "null" )
    operand   := NAME | NUMBER | "-" NUMBER | TEXT
    """

    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def accept(self, kind: str, value: str | None = None) -> Token | None:
        token = self.current
        if token.kind == kind and (value is None or token.value == value):
            return self.take()
        return None

    def expect(self, kind: str, value: str, what: str) -> Token:
        token = self.accept(kind, value)
        if token is None:
            raise ConditionError(
                f"expected {what} at position {self.current.position},"
                f" found {describe(self.current)}"
            )
        return token

    def parse(self):
        if self.current.kind == "end":
            raise ConditionError("is empty")
        tree = self.condition()
        if self.current.kind != "end":
            raise ConditionError(
                f"unexpected {describe(self.current)} at position {self.current.position}"
                " (join conditions with and / or)"
            )
        return tree

    def condition(self):
        parts = [self.disjunct()]
        while self.accept("keyword", "or"):
            parts.append(self.disjunct())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def disjunct(self):
        parts = [self.conjunct()]
        while self.accept("keyword", "and"):
            parts.append(self.conjunct())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def conjunct(self):
        token = self.current
        if token.kind not in ("keyword", "punctuation") or token.value not in ("not", "("):
            return self.predicate()
        self.take()
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ConditionError(
                f"nested deeper than {MAX_NESTING} levels of not and parentheses at position"
                f" {token.position}"
            )
        if token.value == "not":
            inner = Not(self.conjunct())
        else:
            inner = self.condition()
            self.expect("punctuation", ")", "')'")
        self.depth -= 1
        return inner

    def predicate(self):
        left = self.operand()
        token = self.current
        if token.kind == "operator":
            self.take()
            return Compare(token.value, left, self.operand())
        if self.accept("keyword", "is"):
            negated = self.accept("keyword", "not") is not None
            self.expect("keyword", "null", "null after is")
            return IsNull(left, negated)
        negated = self.accept("keyword", "not") is not None
        if self.accept("keyword", "between"):
            low = self.operand()
            self.expect("keyword", "and", "and between the bounds of between")
            return Between(left, low, self.operand(), negated)
        if self.accept("keyword", "in"):
            self.expect("punctuation", "(", "'(' after in")
            values = [self.operand()]
            while self.accept("punctuation", ","):
                values.append(self.operand())
            self.expect("punctuation", ")", "')' closing the in list")
            return InList(left, tuple(values), negated)
        if self.accept("keyword", "like"):
            pattern = self.operand()
            if not isinstance(pattern, Constant) or pattern.kind != TEXT:
                raise ConditionError(
                    f"like needs a quoted pattern such as '%ST%' at position {token.position}"
                )
            return Like(left, pattern, negated)
        raise ConditionError(
            f"expected an operator (= != < <= > >= between in like is) at position"
            f" {token.position}, found {describe(token)}"
        )

    def operand(self):
        token = self.take()
        if token.kind == "name":
            return Column(token.value)
        if token.kind == "number":
            return Constant(float(token.value), NUMBER)
        if token.kind == "text":
            return Constant(token.value, TEXT)
        if token.kind == "punctuation" and token.value == "-" and self.current.kind == "number":
            return Constant(-float(self.take().value), NUMBER)
        raise ConditionError(
            f"expected a column, a number or a quoted text at position {token.position},"
            f" found {describe(token)}"
        )


def describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the condition"
    if token.kind == "keyword":
        return f"the keyword {token.value!r}"
    return repr(token.value)


def parse(text: str):
    """The condition's tree, columns unresolved; a ConditionError says what and where."""
    if not isinstance(text, str):
        raise ConditionError("must be text")
    return Parser(text).parse()


# --- checking ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnCatalog:
    """The columns a condition may name: ``kinds`` by table.column, and each bare name's
    tables in order (a bare name shared by tables is ambiguous unless it is a key that
    means the same in each, or factor_daily's copy of one market table's field)."""

    kinds: Mapping[str, str]
    tables_of: Mapping[str, tuple[str, ...]]
    shared_keys: frozenset

    def resolve(self, name: str) -> str:
        if "." in name:
            if name not in self.kinds:
                table, column = name.split(".")
                if not any(q.startswith(f"{table}.") for q in self.kinds):
                    known = ", ".join(sorted({q.split(".")[0] for q in self.kinds}))
                    raise ConditionError(f"unknown table {table!r} (tables: {known})", name)
                raise ConditionError(f"unknown column {column!r} in table {table!r}", name)
            return name
        tables = self.tables_of.get(name)
        if not tables:
            raise ConditionError(f"unknown column {name!r}{suggest(name, self.tables_of)}", name)
        if len(tables) > 1 and name not in self.shared_keys:
            market_tables = [table for table in tables if table != FACTOR_TABLE]
            if len(market_tables) == 1:
                # factor_daily's column of a market field's name is zquant's factor that
                # copies it (turnover_rate): the bare name reads the market table.
                return f"{market_tables[0]}.{name}"
            options = " or ".join(f"{table}.{name}" for table in tables)
            raise ConditionError(
                f"column {name!r} is in {', '.join(tables)}: write {options}", name
            )
        return f"{tables[0]}.{name}"


def suggest(name: str, names: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(names), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def check(tree, catalog: ColumnCatalog):
    """The tree with every column resolved and every constant typed to what it meets."""
    if isinstance(tree, BoolOp):
        return BoolOp(tree.op, tuple(check(part, catalog) for part in tree.parts))
    if isinstance(tree, Not):
        return Not(check(tree.part, catalog))
    if isinstance(tree, IsNull):
        return IsNull(column_operand(tree.operand, catalog, "is null"), tree.negated)
    if isinstance(tree, Like):
        operand = column_operand(tree.operand, catalog, "like")
        if operand.kind != TEXT:
            raise ConditionError(
                f"type mismatch: like needs a text column, {operand.name} is a {operand.kind}",
                operand.name,
            )
        return Like(operand, tree.pattern, tree.negated)
    if isinstance(tree, Between):
        operand = column_operand(tree.operand, catalog, "between")
        low, high = (typed(bound, operand, catalog) for bound in (tree.low, tree.high))
        return Between(operand, low, high, tree.negated)
    if isinstance(tree, InList):
        operand = column_operand(tree.operand, catalog, "in")
        values = tuple(typed(value, operand, catalog) for value in tree.values)
        if not all(isinstance(value, Constant) for value in values):
            raise ConditionError("an in list holds constants only", operand.name)
        return InList(operand, values, tree.negated)
    left, right = tree.left, tree.right
    if isinstance(left, Constant) and isinstance(right, Constant):
        raise ConditionError(f"{tree.op} compares two constants: name a column")
    if isinstance(left, Constant):
        right = resolve_column(right, catalog)
        return Compare(tree.op, typed(left, right, catalog), right)
    left = resolve_column(left, catalog)
    return Compare(tree.op, left, typed(right, left, catalog))


def resolve_column(column: Column, catalog: ColumnCatalog) -> Column:
    qualified = catalog.resolve(column.name)
    return Column(column.name, qualified, catalog.kinds[qualified])


def column_operand(operand, catalog: ColumnCatalog, keyword: str) -> Column:
    if not isinstance(operand, Column):
        raise ConditionError(f"{keyword} needs a column on its left, not {operand.value!r}")
    return resolve_column(operand, catalog)


def typed(operand, against: Column, catalog: ColumnCatalog):
    """``operand`` (a constant or a column) checked to compare with the column ``against``."""
    if isinstance(operand, Column):
        column = resolve_column(operand, catalog)
        if column.kind != against.kind:
            raise ConditionError(
                f"type mismatch: {against.name} is a {against.kind}, {column.name} is a"
                f" {column.kind}",
                column.name,
            )
        return column
    if against.kind == DATE and operand.kind == TEXT:
        return Constant(date_constant(operand.value, against.name), DATE)
    if operand.kind != against.kind:
        shown = f"'{operand.value}'" if operand.kind == TEXT else f"{operand.value:g}"
        hint = " (quote text values)" if against.kind == TEXT else ""
        raise ConditionError(
            f"type mismatch: {against.name} is a {against.kind} column, compared with the"
            f" {operand.kind} {shown}{hint}",
            against.name,
        )
    return operand


def date_constant(text: str, column: str) -> pd.Timestamp:
    for form in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return pd.Timestamp(dt.datetime.strptime(text, form))
        except ValueError:
            continue
    raise ConditionError(
        f"type mismatch: {column} is a date, '{text}' is not a date (write '2026-01-31')", column
    )


def children(node) -> tuple:
    """The nodes directly under ``node``."""
    if isinstance(node, BoolOp):
        return node.parts
    if isinstance(node, Not):
        return (node.part,)
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, Between):
        return (node.operand, node.low, node.high)
    if isinstance(node, InList):
        return (node.operand, *node.values)
    if isinstance(node, Like | IsNull):
        return (node.operand,)
    return ()


def columns_of(tree) -> list[str]:
    """The qualified columns a checked tree reads, in order of first appearance."""
    found: dict[str, None] = {}
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, Column):
            found[node.qualified] = None
        pending.extend(reversed(children(node)))
    return list(found)


# --- evaluating --------------------------------------------------------------------------


def evaluate(tree, frame: pd.DataFrame) -> pd.Series:
    """True where ``frame``'s row passes the checked tree (False where it fails or is
    unknown). ``frame`` has a column per qualified name; dates as datetime64."""
    return truth(tree, frame).fillna(False).astype(bool)


def truth(node, frame: pd.DataFrame) -> pd.Series:
    """SQL's three-valued truth of ``node`` per row: True, False or NA (pandas' Kleene
    logic on the nullable boolean dtype does the and/or/not)."""
    if isinstance(node, BoolOp):
        results = [truth(part, frame) for part in node.parts]
        combined = results[0]
        for result in results[1:]:
            combined = combined & result if node.op == "and" else combined | result
        return combined
    if isinstance(node, Not):
        return ~truth(node.part, frame)
    if isinstance(node, IsNull):
        missing = frame[node.operand.qualified].isna()
        return (~missing if node.negated else missing).astype("boolean")
    if isinstance(node, Compare):
        return compare(node.op, value(node.left, frame), value(node.right, frame))
    values = frame[node.operand.qualified]
    if isinstance(node, Between):
        low = compare(">=", values, value(node.low, frame))
        high = compare("<=", values, value(node.high, frame))
        return negate_if(node.negated, low & high)
    if isinstance(node, InList):
        found = values.isin([constant.value for constant in node.values])
        return negate_if(node.negated, unknown_where(found, values.isna()))
    pattern = like_regex(node.pattern.value)
    matched = values.where(values.notna(), "").astype(str).str.fullmatch(pattern)
    return negate_if(node.negated, unknown_where(matched, values.isna()))


def value(operand, frame: pd.DataFrame):
    return frame[operand.qualified] if isinstance(operand, Column) else operand.value


def compare(op: str, left, right) -> pd.Series:
    missing = pd.isna(left) | pd.isna(right)
    # Text columns hold None for NULL, which < and > cannot compare: compare a stand-in
    # and mark those rows unknown.
    left, right = (
        side.where(side.notna(), "")
        if isinstance(side, pd.Series) and side.dtype == object
        else side
        for side in (left, right)
    )
    return unknown_where(COMPARISONS[op](left, right), missing)


def unknown_where(result: pd.Series, missing) -> pd.Series:
    return result.astype("boolean").mask(missing)


def negate_if(negated: bool, result: pd.Series) -> pd.Series:
    return ~result if negated else result


def like_regex(pattern: str) -> str:
    return "".join(
        ".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern
    )


def compile_condition(text: str, catalog: ColumnCatalog):
    """``text`` read and checked against ``catalog``: the tree ``evaluate`` takes."""
    return check(parse(text), catalog)


def catalog_of(
    tables: Mapping[str, Mapping[str, str]], shared_keys: Sequence[str]
) -> ColumnCatalog:
    """A catalog from {table: {column: kind}}, tables in the order bare names resolve."""
    kinds, tables_of = {}, {}
    for table, columns in tables.items():
        for column, kind in columns.items():
            kinds[f"{table}.{column}"] = kind
            tables_of.setdefault(column, ())
            tables_of[column] += (table,)
    return ColumnCatalog(kinds, tables_of, frozenset(shared_keys))
