"""The demo stack (`campus`: the shape of Strasbourg's Moodle) used by `drplan demo`.

Its compose file and plan are the same files the integration tests use
(testbed/stacks/campus links here), so the demo shows exactly what is tested.
"""
