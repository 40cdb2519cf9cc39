"""CDISC ODM 1.3.2 XML per study (a Snapshot and a Transactional file with the audit trail) under
`<data dir>/bundles/<study>/`."""
