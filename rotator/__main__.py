"""`python -m rotator` runs the same CLI as the `rotator` console script."""

from rotator.cli.commands import main

if __name__ == "__main__":
    main()
