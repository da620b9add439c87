"""Building an index with a model: resume after interruption, checkpoint checks, image queries,
and the CLI's one-line errors."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import CheckpointError, IndexFormatError
from galaxy_retrieval.index.build import BuildConfig, build_index
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.model import build_model, preset, save_weights
from galaxy_retrieval.search.searcher import GalaxySearcher

from .conftest import write_galaxy10_h5

runner = CliRunner()


def _checkpoint(root: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_weights(root / "model.safetensors", build_model(preset("tiny")))
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("build")
    cat = write_galaxy10_h5(tmp / "cat.h5", n=30, size=32, seed=4)
    ck = _checkpoint(tmp / "ck")
    out = tmp / "index"
    with open_catalog(cat) as c:
        build_index(ck, c, out, BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="flat")))
    return {"tmp": tmp, "catalog": cat, "checkpoint": ck, "index": out}


class _Interrupt:
    """A progress reporter that pulls the plug after ``after`` embedding batches."""

    def __init__(self, after: int) -> None:
        self.after = after

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it"):
        outer = self

        class H:
            def advance(self, n: float = 1) -> None:
                if description == "embedding":
                    outer.after -= 1
                    if outer.after < 0:
                        raise KeyboardInterrupt

            def update(self, **_: object) -> None:
                pass

        yield H()

    def log(self, message: str) -> None:
        pass


def test_build_writes_a_complete_self_describing_index(setup: dict[str, Path]) -> None:
    m = json.loads((setup["index"] / "manifest.json").read_text())
    assert m["complete"] and m["count"] == 30 and m["dim"] == 16
    assert len(m["shards"]) == 4 and [s["rows"] for s in m["shards"]] == [8, 8, 8, 6]
    assert m["model"]["preset"] == "tiny" and len(m["model"]["sha256"]) == 64
    assert (setup["index"] / "model" / "model.safetensors").is_file()
    assert not (setup["index"] / "build-state.json").exists()


def test_resume_after_interruption_gives_identical_index(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    cfg = BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="flat"))
    with open_catalog(setup["catalog"]) as c:
        with pytest.raises(KeyboardInterrupt):
            build_index(setup["checkpoint"], c, out, cfg, progress=_Interrupt(after=5))
    # two shards finished, the third was mid-way: no manifest, so not an index yet
    assert sorted(p.name for p in (out / "embeddings").glob("part-*.parquet")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    with pytest.raises(IndexFormatError, match="a build was interrupted"):
        GalaxySearcher.open(out)
    with open_catalog(setup["catalog"]) as c:
        res = build_index(setup["checkpoint"], c, out, cfg)
    assert (res.reused_shards, res.embedded_shards) == (2, 2)
    for name in ["vectors.npy", "faiss.index", *[f"embeddings/part-0000{i}.parquet" for i in range(4)]]:
        assert (out / name).read_bytes() == (setup["index"] / name).read_bytes(), name


def test_resume_refuses_a_different_checkpoint(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    cfg = BuildConfig(shard_rows=8, batch_size=4)
    with open_catalog(setup["catalog"]) as c:
        with pytest.raises(KeyboardInterrupt):
            build_index(setup["checkpoint"], c, out, cfg, progress=_Interrupt(after=3))
        other = _checkpoint(tmp_path / "other", seed=1)
        with pytest.raises(IndexFormatError, match="interrupted build of something else .*checkpoint_sha256"):
            build_index(other, c, out, cfg)
        build_index(other, c, out, BuildConfig(shard_rows=8, batch_size=4, overwrite=True))
    assert GalaxySearcher.open(out).manifest.count == 30


def test_query_by_image_finds_the_image_itself(setup: dict[str, Path]) -> None:
    s = GalaxySearcher.open(setup["index"])
    with open_catalog(setup["catalog"]) as c:
        im = c[13].image
    hits = s.query(image=im, k=3)
    assert hits[0].object_id == "13" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    batch = s.query_batch([im, c[2].image], k=2)
    assert [b[0].object_id for b in batch] == ["13", "2"]


def test_checkpoint_must_match_the_index(setup: dict[str, Path], tmp_path: Path) -> None:
    other = _checkpoint(tmp_path / "other", seed=7)
    s = GalaxySearcher.open(setup["index"], checkpoint=other)
    with pytest.raises(CheckpointError, match="does not match the index"):
        s.query(image=np.zeros((32, 32, 3), np.uint8))


def test_cli_query_table_json_and_mosaic(setup: dict[str, Path], tmp_path: Path) -> None:
    q = tmp_path / "q.png"
    with open_catalog(setup["catalog"]) as c:
        Image.fromarray(c[5].image).save(q)
    mosaic = tmp_path / "m.png"
    r = runner.invoke(
        app, ["query", "--index", str(setup["index"]), "--image", str(q), "--k", "4", "--mosaic", str(mosaic)]
    )
    assert r.exit_code == 0, r.output
    assert "neighbours of" in r.output and "4 hits" in r.output
    w, h = Image.open(mosaic).size
    assert w > h > 0
    r = runner.invoke(
        app, ["query", "--index", str(setup["index"]), "--object-id", "3", "--k", "2", "--json"]
    )
    assert r.exit_code == 0, r.output
    payload = json.loads(r.output)
    assert [len(x["hits"]) for x in payload["results"]] == [2]
    assert "3" not in [h["object_id"] for h in payload["results"][0]["hits"]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image", "{tmp}/missing.png"], "missing.png: no such file"),
        (["--image", "{tmp}/notimage.png"], "notimage.png: not a readable image"),
        (["--object-id", "no-such-object"], "'no-such-object' is not in the index"),
        (["--object-id", "1", "--k", "500"], "k=500 is larger than the 29 objects"),
        (["--ra", "361", "--dec", "0"], "RA 361 out of range"),
        (["--ra", "10", "--dec", "0", "--radius", "0.0001"], "no catalog object within"),
    ],
)
def test_cli_bad_queries_are_one_line_errors(
    setup: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "notimage.png").write_text("plain text")
    before = sorted(p.name for p in setup["index"].rglob("*"))
    r = runner.invoke(app, ["query", "--index", str(setup["index"]), *[a.format(tmp=tmp_path) for a in args]])
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output
    assert r.output.strip().count("\n") == 0  # one line
    assert sorted(p.name for p in setup["index"].rglob("*")) == before  # nothing on disk changed


def test_cli_bad_index_dirs(setup: dict[str, Path], tmp_path: Path) -> None:
    r = runner.invoke(app, ["query", "--index", str(tmp_path / "none"), "--object-id", "1"])
    assert r.exit_code == 2 and "no such index directory" in r.output
    bad = tmp_path / "bad"
    shutil.copytree(setup["index"], bad)
    shard = bad / "embeddings" / "part-00002.parquet"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0x01
    shard.write_bytes(bytes(data))
    r = runner.invoke(app, ["query", "--index", str(bad), "--object-id", "1"])
    assert r.exit_code == 2 and "part-00002.parquet: sha256 does not match" in r.output


def test_cli_build_index_bad_inputs(setup: dict[str, Path], tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "build-index",
            "--checkpoint",
            str(tmp_path / "nope"),
            "--catalog",
            str(setup["catalog"]),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2 and "nope" in r.output and "Traceback" not in r.output
    r = runner.invoke(
        app,
        [
            "build-index",
            "--checkpoint",
            str(setup["checkpoint"]),
            "--catalog",
            str(setup["catalog"]),
            "--out",
            str(setup["index"]),
        ],
    )
    assert r.exit_code == 2 and "already holds a complete index" in r.output
    r = runner.invoke(
        app,
        [
            "build-index",
            "--checkpoint",
            str(setup["checkpoint"]),
            "--catalog",
            str(setup["catalog"]),
            "--out",
            str(tmp_path / "o"),
            "--dtype",
            "int8",
        ],
    )
    assert (
        r.exit_code == 2 and "--dtype" in r.output and "int8" in r.output and "float16" in r.output
    )  # the choices
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_searcher_is_safe_from_several_threads(setup: dict[str, Path]) -> None:
    """The lazy model load and the embed → search path under threads (this small index is
    Flat; per-call nprobe on an IVF index is tested in tests/faults/test_threads.py)."""
    from concurrent.futures import ThreadPoolExecutor

    s = GalaxySearcher.open(setup["index"])  # fresh: the lazy model load races too
    with open_catalog(setup["catalog"]) as c:
        images = [c[i].image for i in range(8)]

    def work(i: int) -> tuple[list[str], list[str]]:
        by_image = s.query(image=images[i], k=5)
        by_id = s.query(object_id=str(i), k=5)
        return [h.object_id for h in by_image], [h.object_id for h in by_id]

    with ThreadPoolExecutor(4) as ex:
        parallel = list(ex.map(work, range(8)))
    sequential = [work(i) for i in range(8)]
    assert parallel == sequential
    assert all(p[0][0] == str(i) for i, p in enumerate(parallel))


def _checkpoint_with(root: Path, **meta: object) -> Path:
    """A checkpoint directory whose checkpoint.json carries ``meta`` (as training writes it)."""
    from galaxy_retrieval.model import FORMAT_VERSION

    _checkpoint(root)
    full = {"format_version": FORMAT_VERSION, "model": preset("tiny").to_dict(), **meta}
    (root / "checkpoint.json").write_text(json.dumps(full))
    return root


def test_manifest_score_weights_are_the_checkpoints_unless_given(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    from galaxy_retrieval.index.build import build_index_from_shards
    from galaxy_retrieval.score import ScoreWeights
    from galaxy_retrieval.train import TrainConfig

    # a checkpoint without learned weights (the fixture's has no checkpoint.json at all): the default
    assert (
        json.loads((setup["index"] / "manifest.json").read_text())["score_weights"]
        == ScoreWeights().to_dict()
    )
    learned = {"cos": 0.5, "l2": 0.3, "l3": 0.2}
    ck = _checkpoint_with(
        tmp_path / "ck",
        train=TrainConfig(preset="tiny", learn_score_weights=True).to_dict(),
        score_weights=learned,
    )
    cfg = BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="flat"))
    with open_catalog(setup["catalog"]) as c:
        res = build_index(ck, c, tmp_path / "a", cfg)
        given = build_index(
            ck,
            c,
            tmp_path / "b",
            BuildConfig(index=IndexSpec(kind="flat"), score_weights=ScoreWeights(1, 0, 0)),
        )
    assert res.manifest.score_weights == learned and res.manifest.model["score_weights"] == learned
    assert GalaxySearcher.open(tmp_path / "a").weights == ScoreWeights.from_dict(learned)
    assert given.manifest.score_weights == {"cos": 1.0, "l2": 0.0, "l3": 0.0}
    # from shards: the source index's weights travel along; none known: the default
    again = build_index_from_shards(
        tmp_path / "a" / "embeddings", tmp_path / "c", BuildConfig(index=IndexSpec(kind="flat"))
    )
    assert again.manifest.score_weights == learned
    bare = tmp_path / "bare"
    shutil.copytree(tmp_path / "a" / "embeddings", bare)
    assert (
        build_index_from_shards(
            bare, tmp_path / "d", BuildConfig(index=IndexSpec(kind="flat"))
        ).manifest.score_weights
        == ScoreWeights().to_dict()
    )


def test_index_of_a_suppression_checkpoint_embeds_queries_the_same_way(tmp_path: Path) -> None:
    from galaxy_retrieval.suppress import SuppressConfig
    from galaxy_retrieval.train import TrainConfig

    from .test_train import star_image

    cat = tmp_path / "stars.h5"
    with h5py.File(cat, "w") as f:
        f["images"] = np.stack([star_image(i % 2 == 0, size=32, seed=i) for i in range(10)])
    tcfg = TrainConfig(preset="tiny", suppress_sources=SuppressConfig())
    ck = _checkpoint_with(tmp_path / "ck", model=tcfg.model_config().to_dict(), train=tcfg.to_dict())
    with open_catalog(cat) as c:
        res = build_index(ck, c, tmp_path / "idx", BuildConfig(index=IndexSpec(kind="flat")))
        im = c[4].image
    assert res.manifest.model["suppress_sources"] == SuppressConfig().to_dict()
    s = GalaxySearcher.open(tmp_path / "idx")
    assert s.embedder.suppress == SuppressConfig()  # from the index's copy of the checkpoint
    hit = s.query(image=im, k=1)[0]
    assert hit.object_id == "4" and hit.score == pytest.approx(1.0, abs=1e-5)  # same input as the index saw


def test_shards_a_cluster_wrote_into_a_new_index_are_built_in_place(tmp_path: Path) -> None:
    """Shards written by ``write_shard`` into ``out/embeddings`` (a cluster's job output)
    are the build's input, not a stranger's files; a user's own part-*.parquet still is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from galaxy_retrieval.index import shard_name, write_shard
    from galaxy_retrieval.index.build import build_index_from_shards
    from galaxy_retrieval.search.searcher import GalaxySearcher

    out = tmp_path / "idx"
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    for i, lo in enumerate(range(0, 40, 16)):
        write_shard(
            out / "embeddings" / shard_name(i),
            [f"o{r}" for r in range(lo, min(40, lo + 16))],
            np.arange(lo, min(40, lo + 16)),
            x[lo : lo + 16],
            {},
        )
    res = build_index_from_shards(out / "embeddings", out, BuildConfig(index=IndexSpec(kind="flat")))
    assert res.manifest.count == 40
    s = GalaxySearcher.open(out)
    assert s.search_vectors(x[:1], k=1)[1][0][0] == 0

    foreign = tmp_path / "foreign"
    (foreign / "embeddings").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1]}), foreign / "embeddings" / shard_name(0))
    with pytest.raises(IndexFormatError, match="not part of an index"):
        build_index_from_shards(out / "embeddings", foreign, BuildConfig(index=IndexSpec(kind="flat")))


def test_cli_flags_win_over_the_pipeline_file_and_the_file_over_the_defaults(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    """gr build-index --pipeline FILE: a flag typed on the command line wins, an untyped one
    leaves the file's value, and the file's values replace the defaults."""
    from galaxy_retrieval.index.manifest import read_manifest

    p = tmp_path / "build.toml"
    p.write_text(
        '[build]\ndtype = "float16"\nshard_rows = 16\nprecision = "bf16"\n\n[index]\nkind = "flat"\nnprobe = 5\n'
    )
    args = ["build-index", "--checkpoint", str(setup["checkpoint"]), "--catalog", str(setup["catalog"])]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "--pipeline", str(p), "--shard-rows", "8"])
    assert r.exit_code == 0, r.output
    m = read_manifest(tmp_path / "a")
    assert m.dtype == "float16"  # from the file
    assert len(m.shards) == 4  # 30 objects, the typed --shard-rows 8 won over the file's 16
    assert m.model["precision"] == "bf16"  # from the file
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--index-type", "flat"])
    assert r.exit_code == 0, r.output
    b = read_manifest(tmp_path / "b")
    assert b.dtype == "float32" and b.model["precision"] == "fp32"  # no file: the defaults (auto: a ViT)
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "c"), "--pipeline", str(p), "--precision", "fp32"])
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "c").model["precision"] == "fp32"  # the flag won over the file
