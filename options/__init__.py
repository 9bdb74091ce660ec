"""Command-line parsers, one module per stage, with the shared ``add_*_args``
of :mod:`.common`. Every root script takes its ``get_args_parser`` from here.

Floor: may import choice tuples and defaults from any package below (utils,
dataset, models, engine, render, metrics); never a script.
"""
