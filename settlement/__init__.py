"""Settlement: meter data, baselines, delivered flexibility, payments and statements.
Not yet implemented; see the roadmap in the README."""
