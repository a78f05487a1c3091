"""The repository: restic through --json, the run manifests stored in it, and the one
owner of every name drplan writes there (layout)."""
