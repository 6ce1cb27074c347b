"""The `bastion` command line: serve, repo, keys, policy, audit, client-config."""
