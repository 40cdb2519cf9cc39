"""`python -m imednet_assets.simulator ...`: serve a simulator (same options as `simulate`)."""

import argparse

from imednet_assets.simulator.server import add_simulate_arguments, run_from_args


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m imednet_assets.simulator",
                                     description="Serve the iMednet API simulator.")
    add_simulate_arguments(parser)
    run_from_args(parser.parse_args())


if __name__ == "__main__":
    main()
