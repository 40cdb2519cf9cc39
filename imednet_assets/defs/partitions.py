"""Partitioning of every asset: one dynamic partition per study, added by the discovery sensor."""

import dagster as dg

STUDY_PARTITIONS_NAME = "study"

study_partitions = dg.DynamicPartitionsDefinition(name=STUDY_PARTITIONS_NAME)
