"""Docker engines (sites): the only package that talks to the Engine API."""
