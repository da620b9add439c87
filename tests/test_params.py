"""Parameter agreement between queries and their neighbours (evaluate/params.py)."""

import math

import numpy as np
import pytest

from galaxy_retrieval.evaluate.params import parameter_agreement, rankdata, spearman


def test_rankdata_averages_ties():
    assert rankdata(np.array([10.0, 30.0, 20.0, 20.0])).tolist() == [1.0, 4.0, 2.5, 2.5]


def test_spearman_by_hand():
    # ranks a: 1 2 3 4, ranks b: 2 1 4 3 → d² = 1+1+1+1 = 4, ρ = 1 − 6·4/(4·15) = 0.6
    assert spearman([1, 2, 3, 4], [20, 10, 40, 30]) == pytest.approx(0.6)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_parameter_agreement_perfect_random_and_masked():
    values = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    q = np.array([0, 2, 5])
    # each query's nearest neighbours by value: perfectly ordered pairs
    nb = np.array([[1, 2], [1, 3], [4, 3]])
    # pairs (0.1,0.2) (0.1,0.3) (0.3,0.2) (0.3,0.4) (0.6,0.5) (0.6,0.4): ranks of a 1.5 1.5 3.5 3.5 5.5 5.5
    got = parameter_agreement(q, nb, values, k=2)
    a = np.array([0.1, 0.1, 0.3, 0.3, 0.6, 0.6])
    b = np.array([0.2, 0.3, 0.2, 0.4, 0.5, 0.4])
    assert got.rho == pytest.approx(spearman(a, b))
    assert got.rho > 0.7 and got.n_pairs == 6 and got.n_dropped == 0
    # k=1 uses only the first column
    assert parameter_agreement(q, nb, values, k=1).n_pairs == 3
    # undefined values drop pairs: value of row 3 unknown → pairs (0.3,0.4) and (0.6,0.4) go
    v2 = values.copy()
    v2[3] = np.nan
    got2 = parameter_agreement(q, nb, v2, k=2)
    assert (got2.n_pairs, got2.n_dropped) == (4, 2)
    valid = np.ones(6, bool)
    valid[3] = False
    assert parameter_agreement(q, nb, values, k=2, valid=valid).rho == pytest.approx(got2.rho)


def test_parameter_agreement_random_neighbours_near_zero():
    rng = np.random.default_rng(0)
    values = rng.normal(size=5000)
    q = np.arange(1000)
    nb = rng.integers(0, 5000, size=(1000, 10))
    assert abs(parameter_agreement(q, nb, values).rho) < 0.05


def test_parameter_agreement_rejects_bad_shapes():
    with pytest.raises(ValueError):
        parameter_agreement(np.arange(3), np.zeros((2, 5), int), np.zeros(10))
    with pytest.raises(ValueError):
        parameter_agreement(np.arange(2), np.zeros((2, 5), int), np.zeros(10), k=6)
