"""File bundles (CSV zip, XLSX, JSON lines zip) per study under `<data dir>/bundles/<study>/`."""
