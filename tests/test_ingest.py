"""The ingest fast path (galaxy_retrieval.ingest) on real SDSS JPEG cutouts: the same
vectors as the in-memory path where the framing box is the same, how far boxes move when
measured on a reduced decode, the box store, worker order and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from galaxy_retrieval.catalog.folder import FolderCatalog
from galaxy_retrieval.catalog.images import read_image, read_image_reduced
from galaxy_retrieval.errors import ImageReadError
from galaxy_retrieval.framing import MEASURE_SIDE, Framing, frame_box, measure_box
from galaxy_retrieval.index.build import BuildConfig, build_index
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.index.shards import read_shard_embeddings
from galaxy_retrieval.ingest import (
    BoxStore,
    IngestConfig,
    IngestStats,
    embed_prepared,
    prepare_file,
    prepare_rows,
)
from galaxy_retrieval.model import Embedder, build_model, preset, save_weights

CUTOUTS = Path(__file__).parent / "cutouts"
AUTO = Framing.parse("auto")


def _folder(tmp_path: Path, copies: int = 1) -> Path:
    """The real cutouts, each ``copies`` times (distinct bytes: a comment appended)."""
    d = tmp_path / "cutouts"
    d.mkdir()
    for k in range(copies):
        for p in sorted(CUTOUTS.glob("*.jpg")):
            data = (
                p.read_bytes() if k == 0 else p.read_bytes() + f"copy{k}".encode()
            )  # after EOI: same pixels
            (d / f"{p.stem}-{k}.jpg").write_bytes(data)
    return d


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    torch.manual_seed(0)
    return Embedder.from_model(build_model(preset("polar", out_dim=32, framing=AUTO)), device="cpu")


def _old_vectors(embedder: Embedder, cat: FolderCatalog) -> tuple[np.ndarray, list]:
    b = cat.get_batch(range(len(cat)))
    boxes = [frame_box(im, embedder.model_config.framing) for im in b.images]
    return embedder.embed(b.images, batch_size=128), boxes


def _new_vectors(
    embedder: Embedder, cat: FolderCatalog, cfg: IngestConfig, stats: IngestStats | None = None
) -> np.ndarray:
    stats = stats or IngestStats()
    mc = embedder.model_config
    parts = [
        embed_prepared(embedder, pb.x01, cfg, stats)
        for pb in prepare_rows(cat, np.arange(len(cat)), mc.image_size, mc.framing, cfg, stats)
    ]
    return np.concatenate(parts)


def test_the_fast_path_gives_the_in_memory_vectors_when_boxes_are_measured_the_same_way(tmp_path, embedder):
    cat = FolderCatalog(_folder(tmp_path, copies=4))  # 40 files: two worker processes, chunks of 4
    old, _ = _old_vectors(embedder, cat)
    cfg = IngestConfig(workers=2, chunk=4, measure_side=0, boxes=tmp_path / "boxes")
    new = _new_vectors(embedder, cat, cfg)
    assert new.shape == old.shape
    # only the model's batching differs (32 per call instead of 128): float rounding
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-5)


def test_boxes_measured_on_the_reduced_decode_move_a_few_pixels_and_equal_boxes_give_equal_vectors(
    tmp_path, embedder
):
    moves = []
    for p in sorted(CUTOUTS.glob("*.jpg")):
        full = read_image(p)
        ref = frame_box(full, AUTO)  # the in-memory path: the full decode, binned
        box = prepare_file(str(p), 64, AUTO, None, MEASURE_SIDE).box  # the ingest path
        small, shape = read_image_reduced(p, MEASURE_SIDE, min_reduction=4)
        if full.shape[0] >= 400:
            assert small.shape[:2] == (106, 106)  # a 424-px JPEG decoded at 1/4: measured on it
            assert box == measure_box(small, AUTO, shape)
        else:
            assert small.shape == full.shape  # 128 px: decoded whole, binned by 2 as in memory
            assert box == ref
        assert box.found == ref.found
        edge = max(abs(box.top - ref.top), abs(box.left - ref.left), abs(box.side - ref.side))
        moves.append((p.name, full.shape[0], ref.side, edge, edge / ref.side))
    for name, size, side, edge, rel in moves:
        print(f"{name}: {size} px, box side {side}, largest edge move {edge} px ({rel:.1%} of the side)")
    # the JPEG's 1/4 decode against the full decode binned by 4: a few pixels (~2 % of the side)
    assert max(m[4] for m in moves) < 0.12
    # where the box is the same, the vector is the in-memory path's
    cat = FolderCatalog(_folder(tmp_path))
    old, boxes = _old_vectors(embedder, cat)
    new = _new_vectors(embedder, cat, IngestConfig(workers=0, boxes=None))
    same = [
        i
        for i in range(len(cat))
        if prepare_file(str(cat.file_of(i)), 64, AUTO, None, MEASURE_SIDE).box == boxes[i]
    ]
    assert len(same) >= 4  # the 128-px files at least
    np.testing.assert_allclose(new[same], old[same], rtol=0, atol=1e-5)
    # and where it moved, the vector moved little: cosine similarity of an untrained model's vectors
    cos = (new * old).sum(1) / np.linalg.norm(new, axis=1) / np.linalg.norm(old, axis=1)
    assert cos.min() > 0.99, cos


def test_a_small_galaxy_in_a_large_jpeg_is_measured_on_the_full_decode_as_in_memory(tmp_path):
    from PIL import Image

    # an exponential disc of scale length 6 px (R_P ≈ 22 px) in a 424-px frame: 5.4 px on
    # the 1/4 decode, too few to measure a radius on: measured again on the full decode
    rng = np.random.default_rng(0)
    yy, xx = np.indices((424, 424))
    sky = 10 + 200 * np.exp(-np.hypot(xx - 211.5, yy - 211.5) / 6.0) + rng.normal(0, 2, (424, 424))
    p = tmp_path / "small.jpg"
    Image.fromarray(np.repeat(np.clip(sky, 0, 255).astype(np.uint8)[:, :, None], 3, 2)).save(p, quality=95)
    got = prepare_file(str(p), 64, AUTO, None, MEASURE_SIDE)
    assert got.box == frame_box(read_image(p), AUTO) and got.box.found
    assert 0.85 * 3 * 3.6 * 6 <= got.box.side <= 1.2 * 3 * 3.6 * 6  # 2 × margin × R_P
    assert got.framing_s > 0 and got.decode_s > 0


def test_the_box_store_measures_each_image_once_across_processes_and_settings(tmp_path, embedder):
    cat = FolderCatalog(_folder(tmp_path, copies=2))
    cfg = IngestConfig(workers=2, chunk=2, boxes=tmp_path / "boxes")
    first, second = IngestStats(), IngestStats()
    a = _new_vectors(embedder, cat, cfg, first)
    b = _new_vectors(embedder, cat, cfg, second)  # a new BoxStore, read back from disk
    assert (first.framing.measured, first.framing.reused) == (20, 0)
    assert (second.framing.measured, second.framing.reused) == (0, 20)
    assert second.framing_s == 0.0
    np.testing.assert_array_equal(a, b)
    store = BoxStore(tmp_path / "boxes", AUTO, MEASURE_SIDE)
    assert len(store) == 20
    # another framing setting, another measurement size: boxes of their own
    assert len(BoxStore(tmp_path / "boxes", Framing.parse("auto:2"), MEASURE_SIDE)) == 0
    assert len(BoxStore(tmp_path / "boxes", AUTO, 0)) == 0
    # a damaged segment is measured again, not trusted
    for seg in store.dir.glob("seg-*.parquet"):
        seg.write_bytes(b"not parquet")
    third = IngestStats()
    np.testing.assert_array_equal(_new_vectors(embedder, cat, cfg, third), a)
    assert third.framing.measured == 20


def test_many_segments_are_merged_into_one(tmp_path):
    box = frame_box(np.zeros((64, 64, 3), np.uint8), Framing())
    for i in range(20):
        s = BoxStore(tmp_path, AUTO, 100)
        s.put(bytes([i]) * 16, (64, 64), box)
        s.flush()
    # the 17th open merged the 16 segments written so far into one: 1 + 4 segments now
    s = BoxStore(tmp_path, AUTO, 100)
    assert len(s) == 20 and len(list(s.dir.glob("seg-*.parquet"))) == 5
    assert s.get(bytes([7]) * 16) == box and s.get(bytes([7]) * 16, (64, 65)) is None


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_file_is_one_line_naming_it_and_skipping_keeps_the_order(tmp_path, embedder, workers):
    d = _folder(tmp_path, copies=2)
    bad = d / "gz2-101997-1.jpg"
    bad.write_bytes(bad.read_bytes()[:3000])  # truncated
    cfg = IngestConfig(workers=workers, chunk=2, boxes=None)
    mc = embedder.model_config
    with pytest.raises(ImageReadError) as e:
        list(prepare_rows(FolderCatalog(d), np.arange(20), mc.image_size, mc.framing, cfg))
    assert str(e.value).startswith(str(bad)) and "\n" not in str(e.value)
    cat = FolderCatalog(d, on_error="skip")
    got = list(prepare_rows(cat, np.arange(20), mc.image_size, mc.framing, cfg, batch=5))
    rows = np.concatenate([g.rows for g in got])
    skipped = [s for g in got for s in g.skipped]
    bad_row = cat.file_names(range(20)).index(bad.name)
    assert rows.tolist() == [r for r in range(20) if r != bad_row]
    assert [r for r, _ in skipped] == [bad_row] and skipped[0][1].startswith(str(bad))
    assert cat.skipped[-1][0] == bad_row


def test_build_index_on_a_folder_logs_boxes_and_matches_the_in_process_build(tmp_path):
    torch.manual_seed(1)
    ck = tmp_path / "ck"
    save_weights(ck / "model.safetensors", build_model(preset("tiny", framing=AUTO)))
    folder = _folder(tmp_path, copies=2)
    logs: list[str] = []

    class Log:
        from contextlib import nullcontext

        def task(self, *a, **k):
            class T:
                def advance(self, n=1):
                    pass

            return self.nullcontext(T())

        def log(self, msg):
            logs.append(msg)

    def build(out: str, ingest):
        cfg = BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="flat"), ingest=ingest)
        res = build_index(ck, FolderCatalog(folder), tmp_path / out, cfg, Log())
        emb = [
            read_shard_embeddings(p)[0]
            for p in sorted((tmp_path / out / "embeddings").glob("part-*.parquet"))
        ]
        return res, np.concatenate(emb)

    boxes = tmp_path / "boxes"
    old_res, old = build("old", None)
    new_res, new = build("new", IngestConfig(workers=2, chunk=2, measure_side=0, boxes=boxes))
    assert old_res.ingest is None and new_res.ingest["boxes_measured"] == 20
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-5)
    assert "framing boxes: 20 measured, 0 reused from the box store" in logs
    again, _ = build("again", IngestConfig(workers=2, chunk=2, measure_side=0, boxes=boxes))
    assert (
        again.ingest["boxes_reused"] == 20
        and "framing boxes: 0 measured, 20 reused from the box store" in logs
    )
    assert "write_shards" in new_res.seconds


class _Log:
    """A Progress that keeps the log lines and draws nothing."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def task(self, *a, **k):
        from contextlib import nullcontext

        class T:
            def advance(self, n=1):
                pass

            def update(self, **kw):
                pass

        return nullcontext(T())

    def log(self, msg: str) -> None:
        self.lines.append(msg)


def _counts(lines: list[str]) -> tuple[int, int]:
    import re

    got = [re.search(r"framing boxes: ([\d,]+) measured, ([\d,]+) reused", x) for x in lines]
    pairs = [(int(m[1].replace(",", "")), int(m[2].replace(",", ""))) for m in got if m]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def test_train_then_evaluate_then_build_index_measure_each_image_once(tmp_path, monkeypatch):
    from galaxy_retrieval.evaluate.retrieval import evaluate
    from galaxy_retrieval.train.config import TrainConfig
    from galaxy_retrieval.train.loop import train

    monkeypatch.setenv("GALAXY_RETRIEVAL_BOXES", str(tmp_path / "boxes"))
    cat = FolderCatalog(_folder(tmp_path, copies=2))
    run = tmp_path / "run"
    logs = {k: _Log() for k in ("train", "evaluate", "build")}
    train(
        TrainConfig(preset="tiny", epochs=1, batch_size=8, seed=0, loose_batch_sizes=(4,)),
        cat,
        run,
        logs["train"],
    )
    evaluate(run, cat, split="test", baselines=False, batch_sizes=(2,), progress=logs["evaluate"])
    build_index(run, cat, tmp_path / "index", BuildConfig(index=IndexSpec(kind="flat")), logs["build"])
    measured = {k: _counts(v.lines) for k, v in logs.items()}
    assert measured["train"][1] == 0 and measured["train"][0] > 0  # train + validation sets
    assert measured["evaluate"][0] == 20 - measured["train"][0]  # the test split, not seen before
    assert measured["build"] == (0, 20)  # every box reused


def test_gr_build_index_on_a_folder_says_how_many_boxes_it_measured_and_reused(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from galaxy_retrieval.cli import app

    monkeypatch.setenv("GALAXY_RETRIEVAL_BOXES", str(tmp_path / "boxes"))
    torch.manual_seed(2)
    save_weights(tmp_path / "ck" / "model.safetensors", build_model(preset("tiny", framing=AUTO)))
    folder = _folder(tmp_path)
    args = [
        "build-index",
        "--checkpoint",
        str(tmp_path / "ck"),
        "--catalog",
        str(folder),
        "--index-type",
        "flat",
    ]
    first = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--workers", "2"])
    assert first.exit_code == 0, first.output
    assert "framing boxes: 10 measured, 0 reused" in first.output
    second = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--workers", "0"])
    assert second.exit_code == 0, second.output
    assert "framing boxes: 0 measured, 10 reused" in second.output
    bad = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "c"), "--workers", "-1"])
    assert bad.exit_code != 0
