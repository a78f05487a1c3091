"""drplan: an executable disaster-recovery plan for Docker Swarm stacks."""

__version__ = "0.1.0"
