"""The `kosmos` command-line interface."""
