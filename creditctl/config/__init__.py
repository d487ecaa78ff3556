"""Settings: `settings.load_settings` (flag > environment > .env > toml > default), their
value parsers, database URLs, and the masking of secrets."""
