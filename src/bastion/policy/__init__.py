"""Who may do what to which repository, branch and path: one YAML file, deny by default."""
