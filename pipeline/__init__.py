"""keyclass's pipeline: configuration, the TFX pipeline factory, runners and the CLI."""
