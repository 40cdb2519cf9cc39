"""Statistical-software exports: SAS transport (XPT v5), SPSS `.sav` and Stata `.dta` per study."""
