"""``python -m dsecli`` runs the ``dse`` command."""

from dsecli.cli import main

if __name__ == "__main__":
    main()
