"""imednet-assets: iMednet EDC data as Dagster assets, into the lake and every destination."""

from imednet_assets.arrow_memory import use_jemalloc

use_jemalloc()  # before any table is built: every buffer of the process comes from one pool
