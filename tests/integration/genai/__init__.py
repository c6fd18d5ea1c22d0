"""A package, so ``llm_env`` (package scope) is torn down when these tests end, not with the session:
a directory without ``__init__.py`` is no package to pytest, and its package-scoped fixtures live on."""
