"""``python -m tloss_nnunet`` is the same as the ``tloss-nnunet`` command."""

from tloss_nnunet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
