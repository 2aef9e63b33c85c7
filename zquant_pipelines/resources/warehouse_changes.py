"""Which rows a partition write has to touch: the stored rows a frame changes or drops, and
the frame's rows that are new or differ from the stored ones.

Both sides are Arrow tables in load form (``warehouse_frames.load_type``: dates as ISO
text, integers as int64, other numbers as float64). Rows pair up by primary key; a pair is
unchanged when every value column is the same: both NULL, or both present and equal, text
and integers by value and floats bit for bit (so a stored NaN, which a frame cannot give,
differs from NULL, and -0.0 from 0.0). Writing the rest (delete the changed stored rows,
insert the changed frame rows) leaves exactly the rows a full replace would. A
fingerprinted table's sides are its keys and row fingerprints (``warehouse_fingerprint``),
compared as integers.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Combined key codes stay below this (int64).
MAX_CODE = 2**62


def changed_rows(
    stored: pa.Table, incoming: pa.Table, keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(positions of ``stored`` rows to delete, positions of ``incoming`` rows to insert)."""
    if stored.num_rows == 0:
        return np.arange(0), np.arange(incoming.num_rows)
    in_key, stored_key = row_keys(incoming, stored, keys)
    found = pc.index_in(in_key, value_set=stored_key)
    in_rows = np.flatnonzero(found.is_valid().to_numpy(zero_copy_only=False))
    stored_rows = found.drop_null().to_numpy()
    # The value columns of the matched pairs side by side, compared column by column.
    values = [name for name in incoming.column_names if name not in keys]
    mine = incoming.select(values).take(in_rows)
    theirs = stored.select(values).take(stored_rows)
    same = pa.array(np.ones(len(in_rows), dtype=bool))
    for name in values:
        same = pc.and_(same, same_values(mine[name], theirs[name]))
    same = same.to_numpy(zero_copy_only=False)
    kept_incoming = np.zeros(incoming.num_rows, dtype=bool)
    kept_incoming[in_rows[same]] = True
    kept_stored = np.zeros(stored.num_rows, dtype=bool)
    kept_stored[stored_rows[same]] = True
    return np.flatnonzero(~kept_stored), np.flatnonzero(~kept_incoming)


def row_keys(first: pa.Table, second: pa.Table, keys: Sequence[str]) -> tuple[pa.Array, pa.Array]:
    """One int64 per row of each table, equal exactly when the rows' keys are
    (``key_codes`` over both tables' rows)."""
    combined = key_codes(
        [
            pa.concat_arrays([first[key].combine_chunks(), second[key].combine_chunks()])
            for key in keys
        ]
    )
    return pa.array(combined[: first.num_rows]), pa.array(combined[first.num_rows :])


def key_codes(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """One int64 per row, equal exactly when the rows' values in ``columns`` (no NULLs) are:
    each column dictionary-encoded, the codes combined positionally (no text joined with a
    separator that a value could contain). When the next combination could pass int64, the
    codes so far are renumbered densely first (one per distinct combination), so any number
    of key columns fits."""
    combined = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    bound = 1  # combined < bound
    for column in columns:
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        encoded = array.dictionary_encode()
        size = max(len(encoded.dictionary), 1)
        if bound * size > MAX_CODE:
            combined, uniques = pd.factorize(combined)
            bound = max(len(uniques), 1)
        combined = combined * size + encoded.indices.to_numpy(zero_copy_only=False)
        bound *= size
    return combined


def same_values(first: pa.ChunkedArray, second: pa.ChunkedArray) -> pa.Array:
    """Per row, whether the two values are the same: both NULL, or both present and equal
    (floats compared as their bits)."""
    first, second = first.combine_chunks(), second.combine_chunks()
    if pa.types.is_floating(first.type):
        first, second = first.view(pa.int64()), second.view(pa.int64())
    # equal is NULL where either value is.
    equal = pc.fill_null(pc.equal(first, second), False)
    if not (first.null_count or second.null_count):
        return equal
    return pc.or_(equal, pc.and_(first.is_null(), second.is_null()))
