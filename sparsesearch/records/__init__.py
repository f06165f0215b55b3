"""Typed, torch-free records: the pruning config, the study spec, the recipe, the study state, and the name
tables they are checked against. Loading a spec or a recipe imports nothing heavier than this package."""
