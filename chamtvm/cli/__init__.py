"""Command line (argparse only): ``main`` (tune, predict, measure, search, targets),
``accuracy`` and ``devices`` subcommands. Below this package nothing sees an argparse
namespace: commands build config objects and call the stage packages."""
