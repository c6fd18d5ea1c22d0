"""The fraud demo's feature repository: Feast definitions and pipelines, applied like any user's.

Registered as the template ``fraud`` (entry point group ``kosmos.features.templates``); a copy of
these files is what `kosmos features apply -p <project> <folder>` would send.
"""
