"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class NasInputError(ValueError):
    """Bad input: a space file, a genotype, a CLI value, a data folder, a run folder.

    The message always names what is wrong (file, key, token or value) so the
    user can fix it without reading a traceback.
    """


class GenotypeError(NasInputError):
    """A genotype string (or Arch field) that is malformed; the message names the token."""
