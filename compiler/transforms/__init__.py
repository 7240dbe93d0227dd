"""Graph-to-graph transforms built only from primitive rules."""
