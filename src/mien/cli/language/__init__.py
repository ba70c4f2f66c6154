"""Commands for the persona language: ``mien validate|render|explain|schema``."""
