"""The github repository backend: GitHub's REST API read through and cached by SHA, for deployments without disk."""

from bastion.repos.github_backend.backend import GitHubBackend
from bastion.repos.github_backend.client import GitHubClient
from bastion.repos.github_backend.limits import RateLimitSnapshot

__all__ = ["GitHubBackend", "GitHubClient", "RateLimitSnapshot"]
