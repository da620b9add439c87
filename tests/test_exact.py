"""The compiled exact scan against the float64 reference score, and its top-k bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from galaxy_retrieval.errors import ConfigError, QueryError
from galaxy_retrieval.score import ScoreWeights, score_numpy, score_terms_numpy
from galaxy_retrieval.search import exact, kernels, topk
from galaxy_retrieval.search.exact import exact_knn, rerank, score_matrix, score_terms
from galaxy_retrieval.search.synthetic import clustered_vectors


def _data(n: int = 300, dim: int = 48, nq: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    xb = clustered_vectors(n, dim, n_clusters=8, intrinsic_dim=6, seed=seed)
    rng = np.random.default_rng(seed)
    # Queries near stored rows (the usual case) and one far from all of them.
    xq = xb[rng.choice(n, nq - 1, replace=False)] + 0.05 * rng.standard_normal((nq - 1, dim)).astype(
        np.float32
    )
    return np.vstack([xq, rng.standard_normal((1, dim)).astype(np.float32)]), xb


def _brute_topk(s: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    ids = np.arange(s.shape[1]) if ids is None else ids
    order = np.stack([np.lexsort((ids, -row)) for row in s])[:, :k]
    return np.take_along_axis(s, order, axis=1), ids[order]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("dim", [2048, 67])  # the paper's width, and one with a SIMD tail
def test_terms_match_float64_reference(dtype, dim):
    xq, xb = _data(n=200, dim=dim)
    xb = xb.astype(dtype)
    cos, i2, i3 = score_terms(xq, xb, device="cpu")
    assert cos.dtype == np.float32 and cos.shape == (len(xq), len(xb))
    for qi, q in enumerate(xq):
        for got, want in zip((cos[qi], i2[qi], i3[qi]), score_terms_numpy(q, xb)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_score_matrix_is_the_weighted_score(dtype):
    xq, xb = _data(dim=96)
    xb = xb.astype(dtype)
    w = ScoreWeights(cos=0.5, l2=0.3, l3=0.2)
    s = score_matrix(xq, xb, w, device="cpu")
    for qi, q in enumerate(xq):
        np.testing.assert_allclose(s[qi], score_numpy(q, xb, w), rtol=1e-5, atol=1e-6)
    # A single (D,) query is one row.
    np.testing.assert_array_equal(score_matrix(xq[0], xb, w, device="cpu"), s[:1])


def test_zero_vectors_have_cosine_zero_like_the_reference():
    xb = np.zeros((3, 16), np.float32)
    xb[1] = 1.0
    cos, i2, _ = score_terms(np.zeros((1, 16), np.float32), xb, device="cpu")
    want_cos, want_i2, _ = score_terms_numpy(np.zeros(16), xb)
    np.testing.assert_allclose(cos[0], want_cos, atol=1e-7)
    np.testing.assert_allclose(i2[0], want_i2, rtol=1e-6)


def test_a_query_scores_the_same_alone_and_in_any_batch():
    xq, xb = _data()
    batch = score_matrix(xq, xb, device="cpu")
    for qi in range(len(xq)):
        np.testing.assert_array_equal(score_matrix(xq[qi : qi + 1], xb, device="cpu")[0], batch[qi])


def _with_duplicates(xb: np.ndarray) -> np.ndarray:
    xb = xb.copy()
    xb[[40, 120, 250, 251]] = xb[10]  # five identical rows: exact score ties
    xb[[7, 200]] = xb[199]
    return xb


@pytest.mark.parametrize("k", [1, 3, 10, 300])
def test_exact_knn_is_brute_force_with_ties_to_the_lower_id(k):
    xq, xb = _data()
    xb = _with_duplicates(xb)
    xq = np.vstack([xq, xb[10], xb[199]])  # queries equal to the duplicated rows
    scores, ids = exact_knn(xq, xb, k, block_rows=64, device="cpu")
    want_s, want_i = _brute_topk(score_matrix(xq, xb, device="cpu"), k)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(scores, want_s)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    if k >= 5:
        np.testing.assert_array_equal(ids[-2, :5], [10, 40, 120, 250, 251])
        np.testing.assert_array_equal(ids[-1, :3], [7, 199, 200])
    # The top-k scores are the float64 reference's, up to float32 rounding.
    ref = np.sort(np.stack([score_numpy(q, xb) for q in xq]), axis=1)[:, ::-1][:, :k]
    np.testing.assert_allclose(scores, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_exact_knn_over_a_memmap_block_by_block(tmp_path: Path, dtype):
    xq, xb = _data(n=257)
    xb = _with_duplicates(xb).astype(dtype)
    mm = np.lib.format.open_memmap(tmp_path / "vectors.npy", mode="w+", dtype=dtype, shape=xb.shape)
    mm[:] = xb
    mm.flush()
    del mm
    mm = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    want = exact_knn(xq, xb, 12, block_rows=1 << 16, device="cpu")
    for block_rows in (1, 7, 64, 256, 257, 10_000):
        got = exact_knn(xq, mm, 12, block_rows=block_rows, device="cpu")
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
    # An iterator of blocks of uneven sizes reads the same rows.
    blocks = (xb[s:e] for s, e in ((0, 5), (5, 100), (100, 101), (101, 257)))
    got = exact_knn(xq, blocks, 12, block_rows=50, device="cpu")
    np.testing.assert_array_equal(got[1], want[1])


def test_exact_knn_with_explicit_ids():
    xq, xb = _data()
    ids = 1000 + (np.arange(len(xb)) * 7919) % len(xb)  # a permutation: ties break by these
    s, i = exact_knn(xq, _with_duplicates(xb), 10, block_rows=50, ids=ids, device="cpu")
    want_s, want_i = _brute_topk(score_matrix(xq, _with_duplicates(xb), device="cpu"), 10, ids)
    np.testing.assert_array_equal(i, want_i)
    with pytest.raises(QueryError, match="ids"):
        exact_knn(xq, xb, 3, ids=ids[:-1], device="cpu")
    with pytest.raises(QueryError, match="≥ 0"):
        exact_knn(xq, xb, 3, ids=ids - 2000, device="cpu")


def test_exact_knn_splits_queries_to_bound_memory(monkeypatch):
    xq, xb = _data(nq=7)
    want = exact_knn(xq, xb, 5, block_rows=64, device="cpu")
    monkeypatch.setattr(exact, "_SCORE_BUDGET_BYTES", 300)  # one or two queries per pass
    got = exact_knn(xq, xb, 5, block_rows=64, device="cpu")
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_selection_orders_nan_last_and_padding_after_real_rows():
    s = np.array([[0.5, np.nan, 0.5, -np.inf, 0.9, -np.inf]], np.float32)
    ids = np.array([[7, 1, 3, -1, 9, 4]])
    top_s, top_i, cols = topk.select(s, ids, 6)
    np.testing.assert_array_equal(top_i, [[9, 3, 7, 1, 4, -1]])  # NaN ranks as −inf, before padding
    np.testing.assert_array_equal(top_s, np.array([[0.9, 0.5, 0.5, -np.inf, -np.inf, -np.inf]], np.float32))
    np.testing.assert_array_equal(cols, [[4, 2, 0, 1, 5, 3]])
    # Rising scores are the heap's worst case: every column replaces the root.
    rising = np.arange(1000, dtype=np.float32)[None, :]
    np.testing.assert_array_equal(topk.select(rising, np.arange(1000), 5)[1], [[999, 998, 997, 996, 995]])
    # Many queries over many columns take the parallel path; few distinct scores → many ties.
    many = np.random.default_rng(0).integers(0, 50, size=(3, 30_000)).astype(np.float32)
    ids = np.random.default_rng(1).permutation(30_000)
    top_s, top_i, _ = topk.select(many, ids, 40)
    want_s, want_i = _brute_topk(many, 40, ids)
    np.testing.assert_array_equal(top_i, want_i)
    np.testing.assert_array_equal(top_s, want_s)


def test_exact_knn_pads_when_k_exceeds_the_rows():
    xq, xb = _data(n=4)
    s, i = exact_knn(xq, xb, 6, device="cpu")
    assert s.shape == i.shape == (len(xq), 6)
    assert (i[:, 4:] == -1).all() and np.isneginf(s[:, 4:]).all()
    np.testing.assert_array_equal(np.sort(i[:, :4], axis=1), np.tile(np.arange(4), (len(xq), 1)))


@pytest.mark.parametrize("k", [0, -1, 2.5, True, None])
def test_k_must_be_a_positive_integer(k):
    xq, xb = _data(n=10)
    with pytest.raises(QueryError, match="k must be"):
        exact_knn(xq, xb, k)
    with pytest.raises(QueryError, match="k must be"):
        rerank(xq, np.zeros((len(xq), 2), np.int64), xb, k)


def test_bad_inputs_raise_project_errors():
    xq, xb = _data(n=10)
    with pytest.raises(QueryError, match="dimension"):
        score_matrix(xq[:, :5], xb)
    with pytest.raises(QueryError, match="NaN"):
        score_matrix(np.full_like(xq, np.nan), xb)
    with pytest.raises(ConfigError, match="device"):
        score_matrix(xq, xb, device="tpu")
    with pytest.raises(ConfigError, match="block_rows"):
        exact_knn(xq, xb, 1, block_rows=0)


def test_rerank_takes_the_top_k_of_the_candidates():
    xq, xb = _data()
    xb = _with_duplicates(xb)
    s_all = score_matrix(xq, xb, device="cpu")
    rng = np.random.default_rng(1)
    cand = rng.integers(0, len(xb), size=(len(xq), 40))
    cand[0, :3] = [10, 40, 10]  # a duplicate candidate, and a tie pair
    cand[1, 5:] = -1  # FAISS padding
    cand[2, :] = -1
    cand[2, :2] = [3, 3]  # one valid row, listed twice, k = 4 → padded
    cand[3, :] = -1  # nothing at all
    scores, ids, terms = rerank(xq, cand, xb, 4, device="cpu")
    assert scores.shape == ids.shape == (len(xq), 4) and terms.shape == (len(xq), 4, 3)
    for qi in range(len(xq)):
        c = np.unique(cand[qi][cand[qi] >= 0])
        want_s, want_i = _brute_topk(s_all[qi : qi + 1, c], 4, c)
        n = len(c)
        np.testing.assert_array_equal(ids[qi, :n], want_i[0])
        np.testing.assert_array_equal(scores[qi, :n], want_s[0])
        assert (
            (ids[qi, n:] == -1).all() and np.isneginf(scores[qi, n:]).all() and np.isnan(terms[qi, n:]).all()
        )
        cos, i2, i3 = score_terms(xq[qi], xb[ids[qi, :n]], device="cpu")
        np.testing.assert_array_equal(terms[qi, :n], np.stack([cos[0], i2[0], i3[0]], axis=-1))
    assert len(set(ids[0])) == 4  # the duplicate candidate appears once
    with pytest.raises(QueryError, match="out of range"):
        rerank(xq, np.full((len(xq), 2), len(xb)), xb, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_rerank_of_every_row_is_exact_knn(tmp_path: Path, dtype):
    xq, xb = _data(n=120)
    xb = xb.astype(dtype)
    np.save(tmp_path / "v.npy", xb)
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    cand = np.tile(np.arange(len(xb))[::-1], (len(xq), 1))
    scores, ids, _ = rerank(xq, cand, mm, 15, device="cpu")
    want_s, want_i = exact_knn(xq, xb, 15, device="cpu")
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(scores, want_s)


def test_torch_path_matches_the_kernel(monkeypatch):
    """The CUDA code path (the training's torch score, chunked), run by torch on the CPU: same
    numbers as the numba kernel."""
    pytest.importorskip("torch")
    xq, xb = _data(dim=64)
    want_terms = score_terms(xq, xb, device="cpu")
    want_knn = exact_knn(xq, xb, 8, block_rows=100, device="cpu")
    cand = np.tile(np.arange(0, len(xb), 3), (len(xq), 1))
    cand[0, -5:] = -1
    want_rr = rerank(xq, cand, xb, 5, device="cpu")
    monkeypatch.setattr(exact, "_resolve_device", lambda device, work: "cpu")
    monkeypatch.setattr(exact, "_SCORE_BUDGET_BYTES", 1000)  # query chunks of 1–2
    monkeypatch.setattr(kernels, "_TORCH_BUDGET_BYTES", 64 * 64 * 4 * 4)  # and row chunks
    for got, want in zip(score_terms(xq, xb), want_terms):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    s, i = exact_knn(xq, xb, 8, block_rows=100)
    np.testing.assert_allclose(s, want_knn[0], rtol=1e-5)
    np.testing.assert_array_equal(i, want_knn[1])
    for got, want in zip(rerank(xq, cand, xb, 5), want_rr):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    xq, xb = _data(n=2000, dim=256)
    for dtype in (np.float32, np.float16):
        b = xb.astype(dtype)
        s, i = exact_knn(xq, b, 10, block_rows=512, device="cuda")
        want_s, want_i = exact_knn(xq, b, 10, block_rows=512, device="cpu")
        np.testing.assert_allclose(s, want_s, rtol=1e-5)
        np.testing.assert_array_equal(i, want_i)


def test_clustered_vectors_are_deterministic_and_fill_a_memmap(tmp_path: Path):
    a = clustered_vectors(40, 16, seed=3)
    assert a.dtype == np.float32 and a.shape == (40, 16)
    np.testing.assert_array_equal(a, clustered_vectors(40, 16, seed=3))
    np.testing.assert_array_equal(a[:25], clustered_vectors(25, 16, seed=3))
    assert not np.array_equal(a, clustered_vectors(40, 16, seed=4))
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=(40, 16))
    assert clustered_vectors(40, 16, seed=3, out=mm) is mm
    np.testing.assert_array_equal(mm, a.astype(np.float16))
    with pytest.raises(ConfigError):
        clustered_vectors(10, 4, n_clusters=0)


def test_warmup_compiles_the_kernels():
    exact.warmup()
    # float32 and float16 (as uint16 bits) rows, writable and read-only: four variants each
    for kernel in (kernels._scan_kernel,):
        rows = {str(sig[2]) for sig in kernel.signatures}
        assert any("float32" in r for r in rows) and any("uint16" in r for r in rows)
        assert any("readonly" in r for r in rows) and any("readonly" not in r for r in rows)
    assert kernels._pairs_kernel.signatures and topk._topk_serial.signatures
