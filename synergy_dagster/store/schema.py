"""Table definitions of the metadata store. Arrays live in Parquet/NetCDF; DuckDB keeps metadata
and result tables only, so connections stay short."""

from __future__ import annotations

TABLES: dict[str, str] = {
    "sources": """
        source_name VARCHAR PRIMARY KEY, domain VARCHAR, path VARCHAR, format VARCHAR,
        content_hash VARCHAR, n_sites INTEGER, period_start DATE, period_end DATE,
        n_rows BIGINT, n_valid_target BIGINT, loaded_at TIMESTAMP
    """,
    "sites": """
        site_id VARCHAR, domain VARCHAR, lat DOUBLE, lon DOUBLE, l1 VARCHAR, l2 VARCHAR,
        l3 VARCHAR, subregion VARCHAR, tagging_method VARCHAR, area_share DOUBLE,
        coverage_train DOUBLE, coverage_test DOUBLE, kept BOOLEAN,
        PRIMARY KEY (domain, site_id)
    """,
    "training_sets": """
        domain VARCHAR, set_key VARCHAR, scenario VARCHAR, region VARCHAR, experiment VARCHAR,
        n_sites INTEGER, sites_hash VARCHAR, trained_as VARCHAR, added_rule VARCHAR,
        train_start DATE, train_end DATE, test_start DATE, test_end DATE,
        PRIMARY KEY (domain, set_key)
    """,
    "models": """
        domain VARCHAR, scenario VARCHAR, region VARCHAR, set_key VARCHAR, seed INTEGER,
        profile VARCHAR, n_sites INTEGER, n_train_samples BIGINT, data_hash VARCHAR,
        config_json VARCHAR, path VARCHAR, file_sha256 VARCHAR, train_seconds DOUBLE,
        final_loss DOUBLE, first_loss DOUBLE, n_iterations INTEGER, resumed_from_block INTEGER,
        device VARCHAR, torch_threads INTEGER, code_version VARCHAR, created_at TIMESTAMP,
        budget VARCHAR, budget_json VARCHAR, stop_reason VARCHAR, best_update INTEGER,
        best_val_nse DOUBLE, best_val_rmse DOUBLE, validation VARCHAR, bank_size INTEGER,
        PRIMARY KEY (domain, set_key, seed, budget)
    """,
    "learning_curves": """
        domain VARCHAR, set_key VARCHAR, scenario VARCHAR, region VARCHAR, seed INTEGER,
        budget VARCHAR, update INTEGER, seconds DOUBLE, val_seconds DOUBLE, train_loss DOUBLE,
        val_nse DOUBLE, val_rmse DOUBLE, validation VARCHAR,
        PRIMARY KEY (domain, set_key, seed, budget, update)
    """,
    "site_metrics": """
        domain VARCHAR, experiment VARCHAR, scenario VARCHAR, region VARCHAR, seed VARCHAR,
        site_id VARCHAR, model_key VARCHAR, rmse DOUBLE, ubrmse DOUBLE, bias DOUBLE,
        corr DOUBLE, nse DOUBLE, kge DOUBLE, n_days INTEGER, budget VARCHAR
    """,
    # Median skill per water year of each scenario (evaluation/water_years.py), region "*" pooled.
    "water_year_skill": """
        domain VARCHAR, experiment VARCHAR, region VARCHAR, scenario VARCHAR, water_year INTEGER,
        first_day DATE, last_day DATE, complete BOOLEAN, n_sites INTEGER, n_days BIGINT,
        median_nse DOUBLE, median_kge DOUBLE, budget VARCHAR
    """,
    "significance": """
        domain VARCHAR, experiment VARCHAR, comparison VARCHAR, scenario_a VARCHAR, scenario_b VARCHAR,
        region VARCHAR, metric VARCHAR, seed VARCHAR, n INTEGER, statistic DOUBLE, p_value DOUBLE, p_holm DOUBLE, effect DOUBLE,
        median_diff DOUBLE, ci_low DOUBLE, ci_high DOUBLE, median_a DOUBLE, median_b DOUBLE,
        share_a_better DOUBLE, budget VARCHAR, method VARCHAR, n_seeds INTEGER,
        seed_sd_median_diff DOUBLE, seed_min_share DOUBLE, seed_max_share DOUBLE, seed_max_p DOUBLE,
        seeds_agree INTEGER
    """,
    "budget_sensitivity": """
        domain VARCHAR, region VARCHAR, metric VARCHAR, budget VARCHAR, n INTEGER,
        median_global DOUBLE, median_local DOUBLE, median_diff DOUBLE, p_value DOUBLE,
        share_global_better DOUBLE, winner VARCHAR, sign_changed BOOLEAN,
        PRIMARY KEY (domain, region, metric, budget)
    """,
    # Synergy curves (evaluation/synergy.py): one row per ROI x pool x point x metric, and the slopes.
    "synergy_curves": """
        domain VARCHAR, budget VARCHAR, region VARCHAR, pool VARCHAR, point VARCHAR, k INTEGER,
        n_train_sites INTEGER, n_eval_sites INTEGER, n_draws INTEGER, metric VARCHAR, value DOUBLE,
        sd DOUBLE, min DOUBLE, max DOUBLE, sd_seeds DOUBLE
    """,
    "synergy_slopes": """
        domain VARCHAR, budget VARCHAR, region VARCHAR, metric VARCHAR, pool VARCHAR, versus VARCHAR,
        x VARCHAR, n_points INTEGER, k_max INTEGER, n_rois INTEGER, slope DOUBLE, intercept DOUBLE,
        se DOUBLE, ci_low DOUBLE, ci_high DOUBLE, p_value DOUBLE, se_ols DOUBLE, gain DOUBLE,
        n_boot INTEGER, aggregation VARCHAR
    """,
    # Each kept site's region under every regionalisation scheme of the study (regions/schemes.py).
    "site_regions": """
        domain VARCHAR, scheme VARCHAR, kind VARCHAR, site_id VARCHAR, region VARCHAR,
        PRIMARY KEY (domain, scheme, site_id)
    """,
    # Global vs local per scheme, and each scheme's local models against random regions'.
    "scheme_comparison": """
        domain VARCHAR, scheme VARCHAR, metric VARCHAR, budget VARCHAR, n_regions INTEGER,
        n_sites INTEGER, median_global DOUBLE, median_local DOUBLE, median_diff DOUBLE,
        share_global_better DOUBLE, p_value DOUBLE, winner VARCHAR, null_scheme VARCHAR,
        n_vs_null INTEGER, median_local_minus_null DOUBLE, p_vs_null DOUBLE, n_null_draws INTEGER,
        aggregation VARCHAR,
        PRIMARY KEY (domain, scheme, metric, budget)
    """,
    # Spatial holdouts (evaluation/spatial.py): per-site metrics of PUB / PUR (site_metrics plus the
    # PUB fold) and the skill lost when the gauge is taken away.
    "spatial_site_metrics": """
        domain VARCHAR, experiment VARCHAR, scenario VARCHAR, region VARCHAR, seed VARCHAR,
        site_id VARCHAR, model_key VARCHAR, rmse DOUBLE, ubrmse DOUBLE, bias DOUBLE,
        corr DOUBLE, nse DOUBLE, kge DOUBLE, n_days INTEGER, budget VARCHAR, fold INTEGER
    """,
    "spatial_gauge_loss": """
        domain VARCHAR, model VARCHAR, setting VARCHAR, metric VARCHAR, n_sites INTEGER,
        median DOUBLE, median_temporal DOUBLE, median_loss DOUBLE, share_worse DOUBLE, budget VARCHAR
    """,
    # Data-quality findings of each source (sources/quality.py): values masked, sites dropped,
    # warnings, with rule, file, site, date and original value; replaced per domain on each read.
    "quality_events": """
        domain VARCHAR, run_id VARCHAR, rule VARCHAR, finding_class VARCHAR, action VARCHAR,
        file VARCHAR, site VARCHAR, variable VARCHAR, date DATE, value DOUBLE, detail VARCHAR
    """,
    # Landed files refused by validation and moved to landed/rejected (one row per content).
    "landing_rejections": """
        sha256 VARCHAR PRIMARY KEY, file_name VARCHAR, reason VARCHAR, stored_as VARCHAR,
        rejected_at TIMESTAMP, batch VARCHAR
    """,
}

# The paired tests of the spatial holdouts have the significance table's columns.
TABLES["spatial_significance"] = TABLES["significance"]

# Values given to columns added after a table was first created, when an older database is
# migrated: every model trained before budget modes existed followed the paper's epoch rule.
# Significance rows written before the Wilcoxon method was a setting used scipy's default.
MIGRATION_DEFAULTS: dict[str, str] = {"budget": "'paper'", "method": "'auto'"}

# Columns renamed since a table was first created (new name -> old name): an older database's
# values are copied over when it is migrated. A "block" is the updates between validation checks;
# it was called an epoch before budget modes made the two differ.
MIGRATION_RENAMES: dict[str, str] = {"resumed_from_block": "resumed_from_epoch"}
