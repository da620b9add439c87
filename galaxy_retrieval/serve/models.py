"""Request and response bodies of the search API; FastAPI turns them into /openapi.json."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..search.options import SearchOptions

# the widest per-call FAISS knobs a request may ask for: past every list of the largest IVF
# (65,536 lists) or a beam of that many, a query only costs more
MAX_KNOB = 1 << 16


class SearchRequest(BaseModel):
    """One query: exactly one of ``object_id``, ``ra``+``dec``, ``vector`` or ``positive``
    (an image goes in a multipart form's ``image`` field instead of this JSON body)."""

    object_id: str | None = Field(None, description="Search from this catalog object.", examples=["42"])
    ra: float | None = Field(
        None, description="Right ascension in degrees; searches from the nearest catalog object."
    )
    dec: float | None = Field(None, description="Declination in degrees (with ra).")
    position: str | None = Field(
        None,
        description="Or a sky position in one string, as astropy's SkyCoord reads it: degrees or sexagesimal (RA in hours).",
        examples=["09h52m12s +02d09m15s"],
    )
    radius_arcsec: float = Field(10.0, gt=0, description="How far from ra/dec the catalog object may lie.")
    vector: list[float] | None = Field(None, description="An embedding made with the index's model.")
    positive: list[str] = Field(
        default_factory=list, description="Object ids the results should resemble (with negative)."
    )
    negative: list[str] = Field(
        default_factory=list, description="Object ids the results should not resemble."
    )
    k: int = Field(10, ge=1, le=1000, description="Number of results.")
    refine: int = Field(
        10, ge=1, le=1000, description="FAISS shortlists k × refine candidates for the exact rerank."
    )
    nprobe: int | None = Field(
        None,
        ge=1,
        le=MAX_KNOB,
        description="IVF lists searched (default: the index's); more: better recall, slower.",
    )
    ef_search: int | None = Field(
        None,
        ge=1,
        le=MAX_KNOB,
        description="HNSW search breadth (default: the index's); more: better recall, slower.",
    )
    where: str | None = Field(
        None,
        description='One boolean expression over the metadata columns (comparisons, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL, arithmetic), e.g. "label = 3 AND redshift < 0.05".',
    )
    min_separation_arcsec: float | None = Field(
        None, gt=0, description="Drop results within this angle of the query or of a better result."
    )
    least: bool = Field(False, description="The k least similar instead of the most similar.")

    def search_options(self) -> SearchOptions:
        """The library's settings of this search."""
        return SearchOptions(
            k=self.k,
            refine=self.refine,
            nprobe=self.nprobe,
            ef_search=self.ef_search,
            where=self.where or None,
            order="least" if self.least else "most",
            min_separation_arcsec=self.min_separation_arcsec,
        )


class HitOut(BaseModel):
    rank: int
    object_id: str
    row: int = Field(description="Row in the source catalog; /api/rows/{row}/image.png shows it.")
    score: float
    percentile: float | None = Field(
        None,
        description="Percent of random catalog pairs scoring lower (null: an index built before it was recorded, or several examples).",
    )
    cos: float
    inv_l2: float
    inv_l3: float
    label: Any = None
    label_name: str | None = None
    ra: float | None = None
    dec: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class QueryOut(BaseModel):
    kind: Literal["object_id", "sky", "image", "vector", "examples", "outliers"]
    object_id: str | None = Field(None, description="The catalog object searched from, when there is one.")
    row: int | None = None
    label: Any = None
    label_name: str | None = None
    ra: float | None = None
    dec: float | None = None
    separation_arcsec: float | None = Field(None, description="Of the object found from the given ra/dec.")


class SearchResponse(BaseModel):
    query: QueryOut
    hits: list[HitOut]
    milliseconds: float


class ObjectOut(BaseModel):
    object_id: str
    row: int
    label: Any = None
    label_name: str | None = None
    ra: float | None = None
    dec: float | None = None
    metadata: dict[str, Any]


class InfoOut(BaseModel):
    index: str
    count: int = Field(description="Objects the index can return (deleted ones excluded).")
    dims: int
    model: dict[str, Any]
    faiss_factory: str | None
    metric: str | None
    columns: list[str]
    label_names: dict[int, str]
    catalog_available: bool = Field(
        description="Whether cutouts can be shown (the source catalog is readable)."
    )
    max_upload_bytes: int


class HealthOut(BaseModel):
    status: Literal["ok"]
    count: int


class ErrorOut(BaseModel):
    detail: str
