"""The `rt2` command-line tool: one entry point, one module per subcommand."""
