"""``python -m holynb``: the same command line as the ``holynb`` script."""

from holynb._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
