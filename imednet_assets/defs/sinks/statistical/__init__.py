"""Statistical-software exports: SAS transport (XPT version 5), SPSS `.sav` and Stata `.dta`.

A destination of its own, always on like the file bundles, written with pyreadstat beside them:
`<data dir>/bundles/<study>/<study>.xpt.zip`, `.sav.zip` and `.dta.zip`. Each zip holds one file
per dataset (`subjects`, `visits`, one per form named after its form key), the `mapping`
dataset in the same format and `mapping.csv`: for every dataset and every column its original
name, DuckDB column, label, short name and label in the format, piece and storage.

pyreadstat enforces none of the formats' limits, so the platform does (`formats`, `names`):
names and labels are shortened deterministically (`names`), text over SAS's 200 bytes (SPSS's
32,767) is split into continuation columns `<name>2`, `<name>3`, ... recorded in the mapping
(splitting, not refusing: free text such as adverse event descriptions is routinely longer, and
one long comment must not block a study's export). What cannot be written exactly is refused
with a message naming study, form, record and variable: a run of blanks longer than a piece
(SAS and SPSS drop trailing blanks) and a NUL character. Numbers beyond SAS's IBM floats are
written as missing and counted (the `__raw` text keeps them). Cells are typed as in DuckDB:
numbers, dates, datetimes; booleans as 1/0 (with value labels "true"/"false" in SPSS and Stata).
"""
