"""One module per schema revision. Keep `bastion.store.db.SCHEMA_HEAD` equal to the newest revision."""
