"""Allow ``python -m biosegment`` as an alias of the ``biosegment`` command."""

from biosegment.cli import main

if __name__ == "__main__":
    main()
