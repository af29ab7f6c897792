"""The contract's primitives (docs/fixed_point.md sections 1, 2 and 4)."""

import numpy as np
import pytest

from hw.fixedpoint import (
    Format,
    FormatError,
    make_tables,
    quantize,
    rshift_round,
    sat,
    table_index,
    wrap,
)


def test_rshift_round_is_round_half_up():
    x = np.array([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 5, 6])
    # x / 4 rounded half up: -1.5 -> -1, -1.25 -> -1, -0.75 -> -1, -0.5 -> 0, 0.5 -> 1 ...
    assert rshift_round(x, 2).tolist() == [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 2]
    assert rshift_round(x, 0).tolist() == x.tolist()
    assert rshift_round(np.array([3]), -2).tolist() == [12]


def test_sat_and_wrap():
    assert sat([-200, -128, 127, 300], 8).tolist() == [-128, -128, 127, 127]
    assert wrap([127, 128, -129, 256], 8).tolist() == [127, -128, 127, 0]


def test_quantize_rule_and_errors():
    assert quantize([0.25, -0.25, 1.49, 2.0], 8, 1).tolist() == [1, 0, 3, 4]
    assert quantize([100.0], 8, 6).tolist() == [127]          # saturates by default
    with pytest.raises(ValueError, match="do not fit"):
        quantize([100.0], 8, 6, saturate=False)
    with pytest.raises(ValueError, match="NaN"):
        quantize([np.nan], 8, 6)


def test_tables_sample_midpoints_and_are_monotonic():
    f = Format()
    sig, tanh = make_tables(f)
    assert len(sig) == len(tanh) == f.table_size
    assert np.all(np.diff(sig) >= 0) and np.all(np.diff(tanh) >= 0)
    assert 0 <= sig.min() and sig.max() <= 2 ** f.gate_frac
    assert -(2 ** f.state_frac) <= tanh.min() and tanh.max() <= 2 ** f.state_frac
    # Symmetry of the midpoint sampling: sigmoid(-x) = 1 - sigmoid(x) up to rounding.
    assert np.all(np.abs(sig + sig[::-1] - 2 ** f.gate_frac) <= 1)


def test_table_index_covers_range_and_clamps():
    f = Format()
    one_p = 2 ** f.pre_frac
    idx = table_index(np.array([-100 * one_p, -8 * one_p, 0, 8 * one_p - 1, 100 * one_p]), f)
    assert idx.tolist() == [0, 0, f.table_size // 2, f.table_size - 1, f.table_size - 1]


@pytest.mark.parametrize("field,value", [("weight_bits", 1), ("weight_bits", 19),
                                         ("acc_bits", 64), ("table_bits", 20),
                                         ("pre_frac", 30), ("state_frac", 16)])
def test_bad_formats_are_refused_by_name(field, value):
    with pytest.raises(FormatError, match=field.split("_")[0]):
        Format(**{field: value})


def test_format_dict_round_trip_and_unknown_keys():
    f = Format(weight_bits=6, state_bits=14)
    assert Format.from_dict(f.to_dict()) == f
    with pytest.raises(FormatError, match="unknown"):
        Format.from_dict({**f.to_dict(), "colour": 3})
