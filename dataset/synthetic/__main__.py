"""``python -m dataset.synthetic``: build the embedded synthetic MCS-layout dataset."""
from dataset.synthetic.synthesize import get_args_parser, main
from utils.cli import run

run(main, get_args_parser(), prog="python -m dataset.synthetic")
