"""The two-site Docker testbed used by drplan's integration tests and benchmarks.

It is not part of the product: it starts the engines (scripts/testbed), deploys the demo
stacks, writes data (generator) and checks data independently of drplan (verifier).
"""
