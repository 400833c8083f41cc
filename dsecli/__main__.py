"""``python -m dsecli`` runs the ``dse`` command."""

from dsecli.cli import app

if __name__ == "__main__":
    app(prog_name="dse")
