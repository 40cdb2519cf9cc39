"""imednet-assets: iMednet EDC data as Dagster assets, into the lake and every destination."""

from imednet_assets.runtime import configure

configure()  # first: before pyarrow and numpy load, and before any table is built
