"""The factor registry: what a factor is, which factors a selection names, and what they need.

A factor is one vectorised function plus one ``Factor`` declaration (column name, inputs,
parameters, unit, NULL rule, description). factor_daily's columns, the asset's column
metadata and the generated table of docs/factors.md all come from the registry, so they
cannot drift from the code. A ``Family`` makes factors whose name carries a window
(``ma{window}_tr``): the registry holds the default windows and a selection may ask for
others by name (``ma120_tr``).

Project-specific factors come from the module named by ``ZQUANT_FACTORS_MODULE``: it defines
``FACTORS``, a list of ``Factor`` (and ``Family``) declarations added after the built-in ones.
"""

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from zquant_pipelines.factors.panel import DailyPanel, calendar_window_starts

DAILY_TABLE = "daily"
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Factor:
    """One factor_daily column and the vectorised function that computes it.

    ``function(data, **parameters)`` returns a (stock x trading-day ordinal) float matrix
    (see ``FactorData``). ``inputs`` are ``table.column`` names; ``lookback_trading_days``
    and ``lookback_calendar_days`` say how much history before a day it reads.
    ``zquant_factor`` is the zquant factor (``turnover_rate``, ``hyper_activity``) the
    column belongs to, for selections by zquant's factor name or id.
    """

    name: str
    function: Callable[..., np.ndarray]
    inputs: tuple[str, ...]
    unit: str
    null_rule: str
    description: str
    parameters: Mapping[str, int] = field(default_factory=dict)
    lookback_trading_days: int = 0
    lookback_calendar_days: int = 0
    zquant_factor: str | None = None

    def __post_init__(self):
        if not IDENTIFIER.fullmatch(self.name):
            raise ValueError(
                f"factor name {self.name!r} must be a lower-case SQL identifier"
                " (a-z, 0-9, _; at most 63 characters)"
            )
        for name in self.inputs:
            if name.count(".") != 1:
                raise ValueError(f"factor {self.name!r}: input {name!r} is not table.column")

    def compute(self, data: "FactorData") -> np.ndarray:
        return self.function(data, **self.parameters)


@dataclass(frozen=True)
class Family:
    """Factors that differ only by a window: ``pattern`` names them (``ma{window}_tr``),
    ``make(window)`` declares one, ``defaults`` are the windows factor_daily holds."""

    pattern: str
    make: Callable[[int], Factor]
    defaults: tuple[int, ...]

    def match(self, name: str) -> int | None:
        prefix, _, suffix = self.pattern.partition("{window}")
        found = re.fullmatch(re.escape(prefix) + r"([1-9][0-9]{0,3})" + re.escape(suffix), name)
        return int(found.group(1)) if found else None


class FactorModuleError(RuntimeError):
    """The module named by ZQUANT_FACTORS_MODULE cannot be used."""


class FactorData:
    """The inputs of one computation, as (stock x trading-day ordinal) matrices.

    ``data["daily_basic.turnover_rate"]`` is the column aligned on the stock's ``daily``
    rows (NaN where the table has no row or value); ``day_numbers`` holds each cell's date
    as a day number; ``zquant_literal`` asks for zquant's literal behaviour (docs/factors.md).
    """

    def __init__(
        self, panel: DailyPanel, row_values: dict[str, np.ndarray], zquant_literal: bool = False
    ):
        self.panel = panel
        self.zquant_literal = zquant_literal
        self._row_values = row_values
        self._matrices: dict = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._matrices:
            if name not in self._row_values:
                raise KeyError(
                    f"factor input {name!r} was not declared; inputs read: "
                    f"{sorted(self._row_values)}"
                )
            self._matrices[name] = self.panel.to_matrix(self._row_values[name])
        return self._matrices[name]

    @property
    def day_numbers(self) -> np.ndarray:
        if "day_numbers" not in self._matrices:
            ordinals = np.asarray([day.toordinal() for day in self.panel.dates], dtype=np.float64)
            self._matrices["day_numbers"] = self.panel.to_matrix(ordinals[self.panel.date_ids])
        return self._matrices["day_numbers"]

    def calendar_starts(self, calendar_days: int) -> np.ndarray:
        """Per cell, the first ordinal of the stock within ``calendar_days`` before its day."""
        key = ("calendar_starts", calendar_days)
        if key not in self._matrices:
            self._matrices[key] = calendar_window_starts(self.day_numbers, calendar_days)
        return self._matrices[key]

    def cached(self, key, make: Callable[[], np.ndarray]) -> np.ndarray:
        """A matrix shared by several factors (a flag two columns count), made once."""
        if key not in self._matrices:
            self._matrices[key] = make()
        return self._matrices[key]


class Registry:
    """The declared factors in table order, their families, and zquant's factor ids."""

    def __init__(
        self,
        declarations: Iterable[Factor | Family],
        zquant_factor_ids: Mapping[int, str],
    ):
        self.factors: dict[str, Factor] = {}
        self.families: list[Family] = []
        self.zquant_factor_ids = dict(zquant_factor_ids)
        for declaration in declarations:
            self.add(declaration)

    def add(self, declaration: Factor | Family) -> None:
        if isinstance(declaration, Family):
            self.families.append(declaration)
            new = [declaration.make(window) for window in declaration.defaults]
        elif isinstance(declaration, Factor):
            new = [declaration]
        else:
            raise TypeError(f"{declaration!r} is not a Factor or Family declaration")
        for factor in new:
            if factor.name in self.factors:
                raise ValueError(f"factor {factor.name!r} is declared twice")
            self.factors[factor.name] = factor

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.factors)

    def select(self, selection: Sequence[str | int] | None = None) -> list[Factor]:
        """The factors a selection names, in table order then request order.

        Items: a column (``ma5_tr``), a column of a family with another window
        (``ma120_tr``), a zquant factor by name (``hyper_activity``) or id (``2``). None or
        empty: every registered factor.
        """
        if not selection:
            return list(self.factors.values())
        chosen: dict[str, Factor] = {}
        for item in selection:
            for factor in self._resolve(item):
                chosen.setdefault(factor.name, factor)
        order = {name: i for i, name in enumerate(self.factors)}
        return sorted(chosen.values(), key=lambda factor: order.get(factor.name, len(order)))

    def _resolve(self, item: str | int) -> list[Factor]:
        text = str(item).strip()
        if text.isdigit() and int(text) in self.zquant_factor_ids:
            text = self.zquant_factor_ids[int(text)]
        members = [f for f in self.factors.values() if f.zquant_factor == text]
        if text in self.factors and not members:
            return [self.factors[text]]
        if members:
            return members
        for family in self.families:
            window = family.match(text)
            if window is not None:
                return [family.make(window)]
        ids = ", ".join(f"{i} ({name})" for i, name in sorted(self.zquant_factor_ids.items()))
        raise ValueError(
            f"factor {item!r} is not known: name a factor_daily column (docs/factors.md), one"
            f" with another window ({', '.join(f.pattern for f in self.families)}), or a"
            f" zquant factor by name or id ({ids})"
        )


def required_inputs(factors: Iterable[Factor]) -> dict[str, list[str]]:
    """{table: [columns]} the factors read, keys first; ``daily`` is always read (its rows
    are the stocks' trading days)."""
    needed: dict[str, list[str]] = {DAILY_TABLE: ["ts_code", "trade_date"]}
    for factor in factors:
        for name in factor.inputs:
            table, column = name.split(".")
            columns = needed.setdefault(table, ["ts_code", "trade_date"])
            if column not in columns:
                columns.append(column)
    return needed


def lookback(factors: Iterable[Factor]) -> tuple[int, int]:
    """(trading days, calendar days) of history the factors read before the first day."""
    factors = list(factors)
    return (
        max((factor.lookback_trading_days for factor in factors), default=0),
        max((factor.lookback_calendar_days for factor in factors), default=0),
    )


def load_factor_module(name: str) -> list[Factor | Family]:
    """The declarations of the project's factor module; a clear error naming it otherwise."""
    where = f"ZQUANT_FACTORS_MODULE={name!r}"
    try:
        module = importlib.import_module(name)
    except Exception as error:  # any failure while importing it is the module's fault
        raise FactorModuleError(
            f"{where}: the factor module cannot be imported: {type(error).__name__}: {error}"
        ) from error
    declarations = getattr(module, "FACTORS", None)
    if not isinstance(declarations, list | tuple):
        raise FactorModuleError(
            f"{where}: the factor module must define FACTORS, a list of Factor or Family"
            f" declarations (zquant_pipelines.factors.registry); got {declarations!r}"
        )
    bad = [item for item in declarations if not isinstance(item, Factor | Family)]
    if bad:
        raise FactorModuleError(f"{where}: FACTORS holds {bad[0]!r}, not a Factor or Family")
    return list(declarations)
