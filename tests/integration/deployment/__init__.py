"""A package, so ``deploy_env`` (package scope) is torn down when these tests end, not with the session."""
