"""The command line's parts apart from its group (cli.py): the shared options and helpers, and
groups of commands that cli.py registers on its group."""
