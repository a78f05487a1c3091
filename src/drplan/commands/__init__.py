"""Implementations of CLI commands; ``drplan.cli`` only parses arguments and calls these."""
