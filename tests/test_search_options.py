"""`SearchOptions`: one set of search settings, validated once, honoured by every query path
(the library's methods, `gr query`, the HTTP API), nprobe included."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from galaxy_retrieval.errors import QueryError
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.search.options import SearchOptions, search_options
from galaxy_retrieval.search.searcher import GalaxySearcher

from .test_index import _clustered, _write_shards

N, D, NLIST = 600, 32, 16
QUERIES = [f"obj-{q:04d}" for q in range(0, N, 29)]


def test_defaults_and_exports() -> None:
    import galaxy_retrieval
    import galaxy_retrieval.search

    o = SearchOptions()
    assert dataclasses.astuple(o) == (10, 10, False, None, None, None, "most", None)
    assert galaxy_retrieval.SearchOptions is SearchOptions
    assert galaxy_retrieval.search.SearchOptions is SearchOptions
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.k = 3  # type: ignore[misc]
    n = SearchOptions(k=np.int64(5), nprobe=np.int32(3), min_separation_arcsec=2, exact=np.bool_(True))
    assert type(n.k) is int and type(n.nprobe) is int and n.min_separation_arcsec == 2.0 and n.exact is True
    assert SearchOptions(order="least").least and not o.least


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(k=0), "k must be ≥ 1, got 0"),
        (dict(k=2.5), "k must be a whole number, got 2.5"),
        (dict(k=True), "k must be a whole number"),
        (dict(refine=0), "refine must be ≥ 1"),
        (dict(nprobe=0), "nprobe must be ≥ 1"),
        (dict(ef_search=-3), "ef_search must be ≥ 1"),
        (dict(nprobe="8"), "nprobe must be a whole number"),
        (dict(order="sideways"), "order must be 'most' or 'least', got 'sideways'"),
        (dict(min_separation_arcsec=0), "minimum separation 0 arcsec must be > 0"),
        (dict(min_separation_arcsec=float("nan")), "must be > 0"),
        (dict(where=3), "where must be one condition as text"),
        (dict(exact="yes"), "exact must be True or False"),
    ],
)
def test_bad_options_are_refused_where_they_are_made(kw: dict, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        SearchOptions(**kw)


def test_keywords_fold_into_the_options() -> None:
    base = SearchOptions(k=3, where="label = 1")
    assert search_options() == SearchOptions()
    assert search_options(base) is base
    assert search_options(base, {"nprobe": 4}) == SearchOptions(k=3, where="label = 1", nprobe=4)
    with pytest.raises(QueryError, match="k must be ≥ 1"):
        search_options(base, {"k": 0})
    with pytest.raises(TypeError, match="unexpected search option.*nprobes"):
        search_options(base, {"nprobes": 4})
    with pytest.raises(QueryError, match="options must be a SearchOptions"):
        search_options(5)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ivf(tmp_path_factory: pytest.TempPathFactory) -> tuple[GalaxySearcher, np.ndarray]:
    """An IVF index whose stored nprobe is 1 of 16 lists: the default misses neighbours."""
    tmp = tmp_path_factory.mktemp("ivf")
    x = _clustered(N, D)
    spec = IndexSpec(kind=f"IVF{NLIST},Flat", nprobe=1)
    res = build_index_from_shards(_write_shards(tmp / "shards", x), tmp / "index", BuildConfig(index=spec))
    s = GalaxySearcher.open(res.path)
    # "images" are the vectors themselves: the query paths that embed need no model here
    s.embed = lambda ims: np.stack([np.asarray(im, np.float32) for im in ims])  # type: ignore[method-assign]
    return s, x


def _rows(hits) -> list[int]:
    return [h.row for h in hits]


def _each_method(s: GalaxySearcher, x: np.ndarray, oid: str, **kw) -> dict[str, list[int]]:
    """The rows every query path answers for the object ``oid`` (or its vector), with ``kw``."""
    pos = s.position_of(oid)
    ra, dec = (float(s.table.column(c)[pos].as_py()) for c in ("ra", "dec"))
    return {
        "search_vectors": [int(p) for p in s.search_vectors(x[pos], exclude=[pos], **kw)[1][0]],
        "query": _rows(s.query(object_id=oid, **kw)),
        "query_sky": _rows(s.query_sky(ra, dec, **kw).hits),
        "query_image": _rows(s.query(image=x[pos], **kw)),
        "query_vector": _rows(s.query_vector(x[pos], **kw)),
        "query_batch": _rows(s.query_batch([x[pos]], **kw)[0]),
        "query_examples": _rows(s.query_examples([oid], **kw)),
    }


def test_every_query_path_honours_nprobe(ivf: tuple[GalaxySearcher, np.ndarray]) -> None:
    s, x = ivf
    assert s.knobs.nlist == NLIST and s.knobs.nprobe == 1
    changed = set()
    for oid in QUERIES:
        default = _each_method(s, x, oid, k=8)
        narrow = _each_method(s, x, oid, options=SearchOptions(k=8, nprobe=1))
        wide = _each_method(s, x, oid, options=SearchOptions(k=8), nprobe=NLIST)  # keywords over options
        exact = _each_method(s, x, oid, k=8, exact=True)
        assert default == narrow, oid  # the stored nprobe is the default
        for m in default:
            assert wide[m] == exact[m], (oid, m)  # every list probed: the exact answer
            if wide[m] != narrow[m]:
                changed.add(m)
    assert changed == set(default), f"nprobe changed nothing for {set(default) - changed}"


def test_search_knobs_come_from_one_place(ivf: tuple[GalaxySearcher, np.ndarray]) -> None:
    s, _ = ivf
    assert s.search_knobs() == (1, None) and s.search_knobs(SearchOptions(nprobe=5)) == (5, None)
    assert s.search_knobs(SearchOptions(nprobe=4), N // 4) == (8, None)  # a filter of 1/4 widens by 2
    assert s.search_knobs(SearchOptions(nprobe=12), 1) == (NLIST, None)  # capped at every list


def test_http_search_takes_nprobe_and_ef_search(ivf: tuple[GalaxySearcher, np.ndarray]) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from galaxy_retrieval.serve import ServeConfig, create_app

    s, _ = ivf
    with TestClient(create_app(ServeConfig(index=s.path))) as c:
        schema = c.get("/openapi.json").json()["paths"]["/api/search"]["post"]["requestBody"]["content"]
        assert {"nprobe", "ef_search"} <= set(schema["application/json"]["schema"]["properties"])
        assert {"nprobe", "ef_search"} <= set(schema["multipart/form-data"]["schema"]["properties"])
        for oid in QUERIES[:6]:
            for nprobe in (None, 1, NLIST):
                knob = {} if nprobe is None else {"nprobe": nprobe}
                body = {"object_id": oid, "k": 8, "refine": 1, **knob}
                r = c.post("/api/search", json=body)
                assert r.status_code == 200, r.text
                want = s.query(object_id=oid, k=8, refine=1, nprobe=nprobe)
                assert [h["row"] for h in r.json()["hits"]] == _rows(want)
        # an index without an HNSW graph ignores ef_search
        assert c.post("/api/search", json={"object_id": "obj-0001", "ef_search": 64}).status_code == 200
        bad_bodies = (
            ({"nprobe": 0}, "nprobe: Input should be greater than or equal to 1"),
            ({"ef_search": 1 << 20}, "ef_search: Input should be less than or equal to"),
            ({"nprobe": "many"}, "nprobe: Input should be a valid integer"),
        )
        for bad, message in bad_bodies:
            r = c.post("/api/search", json={"object_id": "obj-0001", **bad})
            assert r.status_code == 400 and message in r.json()["detail"], r.text


def test_cli_query_takes_nprobe_and_ef_search(ivf: tuple[GalaxySearcher, np.ndarray]) -> None:
    from typer.testing import CliRunner

    from galaxy_retrieval.cli import app

    s, _ = ivf
    base = ["query", "--index", str(s.path), "--object-id", QUERIES[1], "--k", "8", "--refine", "1", "--json"]
    for nprobe in (1, NLIST):
        r = CliRunner().invoke(app, [*base, "--nprobe", str(nprobe), "--ef-search", "32"])
        assert r.exit_code == 0, r.output
        got = [h["row"] for h in json.loads(r.output)["results"][0]["hits"]]
        assert got == _rows(s.query(object_id=QUERIES[1], k=8, refine=1, nprobe=nprobe))
    r = CliRunner().invoke(app, [*base, "--nprobe", "0"])
    assert r.exit_code == 2 and "nprobe must be ≥ 1" in r.output
