"""Operations: new streamflow data arrive, the affected models are retrained, the study re-evaluated.

* ``landing_sensor`` watches the landing folder (``SYNERGY_LANDING_DIR``, default
  ``<study.data_dir>/landing``) for NWIS RDB, CAMELS-US and Caravan streamflow files and starts
  ``landed_streamflow_job`` (:mod:`.landing`); ``landed_training_sensor`` and
  ``landed_evaluation_sensor`` chain the retraining and the evaluation through run tags
  (:mod:`.sensors`).
* ``nwis_daily_fetch`` fetches new and revised days of the tracked USGS gauges from the Water Data API
  into the landing folder (:mod:`.nwis`); the asset check ``usgs_gauges_advancing`` names tracked
  gauges whose newest day is too old (:mod:`.feed_check`).
* Declarative automation of the evaluation, off by default (``SYNERGY_AUTOMATION=1``; :mod:`.automation`).

:func:`.definitions.full_defs` merges all of it into the project's Definitions. Every sensor and
the schedule start STOPPED and need ``dagster-daemon`` (``dagster dev`` runs one).
"""
