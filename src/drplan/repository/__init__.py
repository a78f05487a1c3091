"""restic repositories: the truth about what exists (runs, snapshots, manifests)."""
