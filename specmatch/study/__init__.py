"""Studies: a matrix of recipes x seeds (x denoisers) run as cells, aggregated with statistics into one report."""
