"""Feast definitions of the biopsies example: one table as it is, one view from a pipeline.

A plain Feast repository. Paths are relative to it: ``data/tables/<name>.parquet`` is a table
uploaded with ``kosmos features upload`` (or ``kosmos.features.upload_table``), and
``data/offline/`` is where Kosmos writes what a pipeline returns.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

patient = Entity(
    name="patient", join_keys=["patient_id"], value_type=ValueType.INT64, description="A patient."
)

MEASUREMENTS = [
    "mean_radius",
    "mean_texture",
    "mean_perimeter",
    "mean_area",
    "mean_smoothness",
    "mean_compactness",
    "mean_concavity",
    "mean_concave_points",
    "mean_symmetry",
    "mean_fractal_dimension",
]

biopsies_table = FileSource(
    name="biopsies_table",
    path="data/tables/biopsies.parquet",
    timestamp_field="measured_at",
    created_timestamp_column="recorded_at",
)

biopsy_measurements = FeatureView(
    name="biopsy_measurements",
    entities=[patient],
    ttl=timedelta(days=365),
    schema=[Field(name=name, dtype=Float64) for name in MEASUREMENTS],
    source=biopsies_table,
    tags={"owner": "pathology"},
)

biopsy_shape = FeatureView(
    name="biopsy_shape",
    entities=[patient],
    ttl=timedelta(days=365),
    schema=[
        Field(name="roundness", dtype=Float64, description="4*pi*area / perimeter^2: 1 for a circle."),
        Field(name="radius_spread", dtype=Float64, description="Worst radius over mean radius."),
        Field(name="texture_spread", dtype=Float64, description="Worst texture over mean texture."),
        Field(name="concave_share", dtype=Float64, description="Concave points per unit of concavity."),
    ],
    source=FileSource(
        name="biopsy_shape_source",
        path="data/offline/biopsy_shape.parquet",
        timestamp_field="measured_at",
        created_timestamp_column="recorded_at",
    ),
    tags={"owner": "pathology", "kosmos.pipeline": "biopsy_shape"},
)

diagnosis_v1 = FeatureService(
    name="diagnosis_v1",
    features=[biopsy_measurements, biopsy_shape],
    description="Every feature of the diagnosis model.",
)
