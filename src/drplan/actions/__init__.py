"""One module per action (backup, recover, runs, prune, check, copy, drill, demo)."""
