"""Readers for the formats hydrologists have, and the virtual-CONUS generator.

Every reader returns a :mod:`synergy_dagster.sources.sitedata` dataset (dims ``site`` x ``time``)
so everything downstream is format-agnostic.
"""
