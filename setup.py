"""Package metadata. Torch is installed by scripts/install.sh first (CPU build on machines
without a GPU); the range below accepts that build so pip never swaps it for a CUDA one."""

from setuptools import find_packages, setup

setup(
    name="synergy_dagster",
    version="0.1.0",
    description="Data synergy study (global vs regional LSTMs for soil moisture and streamflow) on Dagster",
    packages=find_packages(exclude=["synergy_dagster_tests", "bench"]),
    python_requires=">=3.11",
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-graphql==1.13.27",
        "torch>=2.3,<2.15",
        "numpy>=1.26",
        "pandas>=2.2",
        "xarray>=2024.1",
        "netCDF4>=1.6",
        "h5netcdf>=1.3",
        "zarr>=2.17",
        "geopandas>=1.0",
        "pyogrio>=0.9",
        "shapely>=2.0",
        "pyproj>=3.6",
        "scipy>=1.15",  # kmeans2(rng=): scipy 1.15 (docs.scipy.org, scipy-1.15.1 kmeans2)
        # DuckDB's extensions ship on PyPI built for one DuckDB release each (loaded offline from
        # these packages by store/extensions.py): the three pins move together.
        "duckdb==1.5.5",
        "duckdb-extension-ducklake==1.5.5",
        "duckdb-extension-postgres==1.5.5",
        "pyarrow>=15",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "requests>=2.31",
        "pyyaml>=6",
        "pydantic>=2.6",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "pytest-timeout>=2.3",
            "ruff>=0.6",
            "hydroeval==0.1.0",
            "HydroErr>=2.0",
            "selenium>=4.20",
            "hypothesis>=6.100",  # property-based fuzzing of the readers (test_fuzz_readers.py)
            "mutmut>=3.8,<4",  # `make mutate` (scripts/mutate.py uses its 3.x settings)
        ],
        # Scale-out engines (see deploy/): pick one with SYNERGY_EXECUTOR. dagster-postgres holds the
        # shared instance (deploy/postgres/dagster.yaml), redis is Celery's broker client (kombu's
        # Redis transport), psycopg2 what dagster-postgres and the tests connect with.
        "scaleout": [
            "dagster-k8s==0.29.27",
            "dagster-celery==0.29.27",
            "dagster-docker==0.29.27",
            "dagster-postgres==0.29.27",
            "redis==8.1.0",
            "psycopg2-binary==2.9.13",
        ],
    },
)
